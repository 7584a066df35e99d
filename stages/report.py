"""report: compare every variant.

    python -m stages.report

Writes reports/metrics.json ({variant: {test_acc, test_acc_last3, ...}}, accuracies in percent,
for `dvc metrics diff`), reports/summary.md (the comparison table) and two charts:
reports/accuracy.png (test accuracy per epoch) and reports/params_vs_accuracy.png.

    python -m stages.report --readme README.md

Copies the table of the committed reports/summary.md into README.md, between the lines
`<!-- summary:start -->` and `<!-- summary:end -->`; trains and recomputes nothing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from stages import paths  # noqa: E402
from stages.config import Recipe, Variant, load_params  # noqa: E402
from stages.errors import DataError, UserError, cli  # noqa: E402
from stages.io import save_figure, write_json, write_text  # noqa: E402

REPORTS = Path("reports")
TARGET_ACC, TARGET_PARAMS, TARGET_EPOCHS = 99.4, 8000, 15  # the write-ups' goal
LAST = 3  # epochs averaged for the headline "last three" number


def read_variant(name: str) -> tuple[pd.DataFrame, dict]:
    try:
        runs = pd.read_csv(paths.train_dir(name) / "runs.csv")
        evaluation = json.loads((paths.eval_dir(name) / "metrics.json").read_text())
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: missing; run `dvc repro` to train and evaluate {name}")
    return runs, evaluation


def test_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy (%) with one row per epoch and one column per seed."""
    return runs.pivot(index="epoch", columns="seed", values="test_acc")


def summarize(runs: pd.DataFrame, evaluation: dict) -> dict:
    """Headline numbers over all seeds: means of the per-seed numbers, their sample standard
    deviation when there are several seeds, and the worst of the last epochs for the target."""
    curves = test_curves(runs)
    mean = curves.mean(axis=1)
    last = curves.tail(LAST)
    final_loss = runs.groupby("seed")["test_loss"].last()
    m = {"seeds": curves.shape[1], "test_acc": round(float(mean.iloc[-1]), 2)}
    if curves.shape[1] > 1:
        m["test_acc_std"] = round(float(curves.iloc[-1].std()), 3)
    m["test_acc_last3"] = round(float(last.mean().mean()), 3)
    if curves.shape[1] > 1:
        m["test_acc_last3_std"] = round(float(last.mean().std()), 3)
    return m | {
        "test_acc_min_last3": round(float(last.min().min()), 2),
        "best_test_acc": round(float(mean.max()), 2),
        "best_epoch": int(mean.idxmax()),
        "test_loss": round(float(final_loss.mean()), 5),
        "params": evaluation["params"],
        "epochs": int(curves.index[-1]),
    }


def meets_target(m: dict) -> bool:
    return (m["params"] < TARGET_PARAMS and m["epochs"] <= TARGET_EPOCHS
            and m["test_acc_min_last3"] >= TARGET_ACC)


def describe(r: Recipe) -> str:
    """The recipe in a few words: optimizer and lr, schedule, batch, dropout, augmentation."""
    optimizer = "SGD" if r.optimizer == "sgd" else "Adam"
    parts = [optimizer if r.lr is None else f"{optimizer} {r.lr:g}"]  # one-cycle: no lr
    if r.scheduler == "none":
        parts.append("constant lr")
    elif r.scheduler == "step":
        start = f" from ep {r.step_start}" if r.step_start > 1 else ""
        parts.append(f"step ×{r.gamma:g} every {r.step} ep{start}")
    elif r.scheduler == "plateau":
        parts.append(f"plateau on {r.plateau_on} loss (×{r.factor:g}, patience {r.patience})")
    else:
        parts.append(f"one-cycle to {r.max_lr:g}")
    parts.append(f"batch {r.batch_size}")
    if r.weight_decay:
        parts.append(f"wd {r.weight_decay:g}")
    if r.dropout:
        parts.append(f"dropout {r.dropout:g}")
    if r.augments:  # fill applies to whatever the moves bring in from outside the image
        moves = [f"rotation ±{r.rotation:g}°" if r.rotation else "",
                 f"zoom ±{r.scale:.0%}" if r.scale else "",
                 f"shift ±{r.translate:.0%}" if r.translate else ""]
        fill = f" fill {r.fill:g}" if r.fill else ""
        parts.append(" + ".join(m for m in moves if m) + fill)
    return ", ".join(parts)


def with_std(m: dict, key: str, digits: int = 2) -> str:
    std = m.get(f"{key}_std")
    return f"{m[key]:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def summary_table(params_variants: dict[str, Variant], metrics: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for name, m in metrics.items():
        v = params_variants[name]
        gap = "" if v.reported is None else f"{m['best_test_acc'] - v.reported:+.2f}"
        rows.append({
            "variant": name,
            "write-up": v.source or "(this project)",
            "params": f"{m['params']:,}",
            "epochs": m["epochs"],
            "recipe": describe(v.recipe),
            "seeds": m["seeds"],
            "reported best %": "" if v.reported is None else f"{v.reported:.2f}",
            "final %": with_std(m, "test_acc"),
            "last-3 mean %": with_std(m, "test_acc_last3"),
            "best % (epoch)": f"{m['best_test_acc']:.2f} ({m['best_epoch']})",
            "best − reported": gap,
            "target met": "yes" if meets_target(m) else "no",
        })
    return pd.DataFrame(rows)


def variant_color(i: int) -> tuple[float, ...]:
    """The i-th variant's colour, the same in every chart (both list variants in one order)."""
    colors = plt.get_cmap("tab20").colors
    return colors[i % len(colors)]


def plot_accuracy(curves: dict[str, pd.DataFrame], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 6.5))
    lowest = TARGET_ACC
    for i, (name, c) in enumerate(curves.items()):
        color, mean = variant_color(i), c.mean(axis=1)
        label = name if c.shape[1] == 1 else f"{name} (mean of {c.shape[1]} seeds, min–max)"
        ax.plot(mean.index, mean, marker="os^vD"[i % 5], markersize=3, color=color, label=label,
                linewidth=2.5 if c.shape[1] > 1 else 1.2)  # multi-seed runs stand out
        if c.shape[1] > 1:
            ax.fill_between(c.index, c.min(axis=1), c.max(axis=1), color=color, alpha=0.2)
        lowest = min(lowest, float(c.iloc[min(2, len(c) - 1):].min().min()))
    ax.axhline(TARGET_ACC, color="black", linestyle="--", linewidth=1, label=f"{TARGET_ACC}%")
    ax.set_ylim(max(98.0, lowest - 0.1), 100)  # the first epochs' climb matters less
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy per epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: no curve hidden
    save_figure(fig, path)


def plot_params(metrics: dict[str, dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (name, m) in enumerate(metrics.items()):  # a legend, not labels: the ~8k ones crowd
        ax.errorbar(m["params"], m["test_acc_last3"], yerr=m.get("test_acc_last3_std"),
                    fmt="o" if meets_target(m) else "x", markersize=7, capsize=3,
                    color=variant_color(i), label=name)
    ax.axhline(TARGET_ACC, color="black", linestyle="--", linewidth=1)
    ax.axvline(TARGET_PARAMS, color="gray", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set(xlabel="parameters (log scale)", ylabel="test accuracy, mean of last 3 epochs (%)",
           title="Parameters vs accuracy (o: target met, x: not; bars: ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    save_figure(fig, path)


def report(out_dir: Path = REPORTS) -> dict[str, dict]:
    variants = load_params().variants
    curves, metrics = {}, {}
    for name in variants:
        runs, evaluation = read_variant(name)
        curves[name], metrics[name] = test_curves(runs), summarize(runs, evaluation)
    table = summary_table(variants, metrics)
    write_text(out_dir / "summary.md", "\n".join([
        "# Summary",
        "",
        f"Accuracies on the 10,000 MNIST test images, in percent. *final*: after the last epoch; "
        f"*last-3 mean*: mean of the last {LAST} epochs (the headline numbers); *best (epoch)*: "
        "the best epoch, picked on the test set as the write-ups did, so optimistic; "
        "*best − reported*: ours minus the write-up's. With several seeds each number is the "
        "mean over seeds ± the sample standard deviation, and the best epoch is that of the mean "
        "curve. On 10,000 test images one image is 0.01 points; runs of one recipe that differ "
        "only in the seed spread by about 0.1 point. "
        f"*target met*: < {TARGET_PARAMS:,} parameters, <= {TARGET_EPOCHS} epochs and >= "
        f"{TARGET_ACC}% in each of the last {LAST} epochs (of every seed).",
        "",
        table.to_markdown(index=False, disable_numparse=True),
        "",
    ]))
    plot_accuracy(curves, out_dir / "accuracy.png")
    plot_params(metrics, out_dir / "params_vs_accuracy.png")
    write_json(out_dir / "metrics.json", metrics)
    return metrics


MARKERS = ("<!-- summary:start -->", "<!-- summary:end -->")


def update_readme(readme: Path, summary: Path = REPORTS / "summary.md") -> None:
    """Put the markdown table of `summary` between the MARKERS lines of `readme`."""
    if not summary.exists():
        raise UserError(f"{summary} not found: run `dvc repro` (or `dvc pull`) first")
    table = [line for line in summary.read_text().splitlines() if line.startswith("|")]
    lines = readme.read_text().splitlines()
    if not table:
        raise UserError(f"{summary} holds no markdown table: run `dvc repro` to rewrite it")
    if [lines.count(m) for m in MARKERS] != [1, 1]:
        raise UserError(f"{readme} needs the lines {MARKERS[0]} and {MARKERS[1]} once each")
    start, end = (lines.index(m) for m in MARKERS)
    if end < start:
        raise UserError(f"{readme}: {MARKERS[1]} comes before {MARKERS[0]}")
    write_text(readme, "\n".join(lines[:start + 1] + table + lines[end:]) + "\n")


@cli
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, metavar="README",
                        help="copy the table of reports/summary.md into README instead")
    readme = parser.parse_args().readme
    if readme:
        update_readme(readme)
        print(f"{readme}: table replaced by that of {REPORTS / 'summary.md'}")
        return
    metrics = report()
    print((REPORTS / "summary.md").read_text())
    print(f"{len(metrics)} variants -> reports/metrics.json, summary.md, accuracy.png")


if __name__ == "__main__":
    main()
