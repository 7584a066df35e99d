"""report: compare every variant.

    python -m stages.report

Writes reports/metrics.json ({variant: {test_acc, test_acc_last3, ...}}, accuracies in percent,
for `dvc metrics diff`), reports/summary.md (the comparison table) and two charts:
reports/accuracy.png (test accuracy per epoch) and reports/params_vs_accuracy.png.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from stages import paths  # noqa: E402
from stages.config import Variant, load_params  # noqa: E402
from stages.errors import DataError, cli  # noqa: E402
from stages.io import atomic_path, write_json, write_text  # noqa: E402

REPORTS = Path("reports")
TARGET_ACC, TARGET_PARAMS, TARGET_EPOCHS = 99.4, 8000, 15  # the write-ups' goal
LAST = 3  # epochs averaged for the headline "last three" number


def read_variant(name: str) -> tuple[pd.DataFrame, dict]:
    try:
        history = pd.read_csv(paths.train_dir(name) / "history.csv")
        evaluation = json.loads((paths.eval_dir(name) / "metrics.json").read_text())
        timing = json.loads((paths.train_dir(name) / "metrics.json").read_text())
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: missing; run `dvc repro` to train and evaluate {name}")
    return history, evaluation | {"train_seconds": timing["seconds"], "device": timing["device"]}


def summarize(variant: Variant, history: pd.DataFrame, evaluation: dict) -> dict:
    acc = history["test_acc"]
    best = int(acc.idxmax())
    last = acc.tail(LAST)
    return {
        "test_acc": round(float(acc.iloc[-1]), 2),
        "test_acc_last3": round(float(last.mean()), 3),
        "test_acc_min_last3": round(float(last.min()), 2),
        "best_test_acc": round(float(acc.iloc[best]), 2),
        "best_epoch": int(history["epoch"].iloc[best]),
        "test_loss": evaluation["test_loss"],
        "params": evaluation["params"],
        "epochs": int(history["epoch"].iloc[-1]),
    }


def meets_target(m: dict) -> bool:
    return (m["params"] < TARGET_PARAMS and m["epochs"] <= TARGET_EPOCHS
            and m["test_acc_min_last3"] >= TARGET_ACC)


def summary_table(params_variants: dict[str, Variant], metrics: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for name, m in metrics.items():
        v = params_variants[name]
        rows.append({
            "variant": name,
            "write-up": v.source or "(this project)",
            "params": f"{m['params']:,}",
            "epochs": m["epochs"],
            "reported best %": "" if v.reported is None else f"{v.reported:.2f}",
            "final %": f"{m['test_acc']:.2f}",
            "last-3 mean %": f"{m['test_acc_last3']:.2f}",
            "best % (epoch)": f"{m['best_test_acc']:.2f} ({m['best_epoch']})",
            "target met": "yes" if meets_target(m) else "no",
        })
    return pd.DataFrame(rows)


def plot_accuracy(histories: dict[str, pd.DataFrame], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, h in histories.items():
        ax.plot(h["epoch"], h["test_acc"], marker="o", markersize=3, label=name)
    ax.axhline(TARGET_ACC, color="black", linestyle="--", linewidth=1, label=f"{TARGET_ACC}%")
    lowest = min(h["test_acc"].iloc[min(2, len(h) - 1):].min() for h in histories.values())
    ax.set_ylim(max(90.0, min(lowest, TARGET_ACC) - 0.3), 100)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy per epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_params(metrics: dict[str, dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, m in metrics.items():
        ax.scatter(m["params"], m["test_acc_last3"], s=30)
        ax.annotate(name, (m["params"], m["test_acc_last3"]), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")
    ax.axhline(TARGET_ACC, color="black", linestyle="--", linewidth=1)
    ax.axvline(TARGET_PARAMS, color="gray", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="test accuracy, mean of last 3 epochs (%)",
           title="Parameters vs accuracy")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def report(out_dir: Path = REPORTS) -> dict[str, dict]:
    variants = load_params().variants
    histories, metrics = {}, {}
    for name, variant in variants.items():
        histories[name], evaluation = read_variant(name)
        metrics[name] = summarize(variant, histories[name], evaluation)
    table = summary_table(variants, metrics)
    write_text(out_dir / "summary.md", "\n".join([
        "# Summary",
        "",
        f"Accuracies on the 10,000 MNIST test images, in percent. *final*: after the last epoch; "
        f"*last-3 mean*: mean of the last {LAST} epochs (the headline numbers); *best (epoch)*: "
        "the best epoch, picked on the test set as the write-ups did, so optimistic. "
        f"*target met*: < {TARGET_PARAMS:,} parameters, <= {TARGET_EPOCHS} epochs and >= "
        f"{TARGET_ACC}% in each of the last {LAST} epochs.",
        "",
        table.to_markdown(index=False),
        "",
    ]))
    plot_accuracy(histories, out_dir / "accuracy.png")
    plot_params(metrics, out_dir / "params_vs_accuracy.png")
    write_json(out_dir / "metrics.json", metrics)
    return metrics


@cli
def main() -> None:
    metrics = report()
    print((REPORTS / "summary.md").read_text())
    print(f"{len(metrics)} variants -> reports/metrics.json, summary.md, accuracy.png")


if __name__ == "__main__":
    main()
