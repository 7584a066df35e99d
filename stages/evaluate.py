"""evaluate: measure one trained variant on the 10,000 test images.

    python -m stages.evaluate VARIANT

Writes reports/variants/<v>/eval/: metrics.json (accuracy, loss, per-class accuracy, parameter
count), confusion.csv (one actual,predicted row per test image, for DVC's confusion plot),
mistakes.png (misclassified digits labelled true→predicted) and layers.md (output shape,
parameters, receptive field and jump of every layer).
"""
from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from stages import paths  # noqa: E402
from stages.config import load_params  # noqa: E402
from stages.engine import evaluate  # noqa: E402
from stages.errors import cli  # noqa: E402
from stages.io import atomic_path, save_figure, write_json, write_text  # noqa: E402
from stages.layers import layer_table  # noqa: E402
from stages.models import count_params, load_model  # noqa: E402
from stages.prepare import load_data  # noqa: E402

MISTAKES_SHOWN = 48  # digits in the grid, in test-set order
GRID_COLS = 12


def per_class_accuracy(labels: torch.Tensor, preds: torch.Tensor) -> dict[str, float]:
    return {str(c): round((preds[labels == c] == c).double().mean().item() * 100, 2)
            for c in range(10)}


def plot_mistakes(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor, path) -> None:
    wrong = (preds != labels).nonzero().flatten()[:MISTAKES_SHOWN]
    rows = max(1, -(-len(wrong) // GRID_COLS))
    fig, axes = plt.subplots(rows, GRID_COLS, figsize=(GRID_COLS * 0.9, rows * 1.05), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{labels[i].item()}→{preds[i].item()}", fontsize=9, color="firebrick")
    fig.suptitle(f"{int((preds != labels).sum())} misclassified test digits "
                 f"(first {len(wrong)}; true→predicted)", fontsize=10)
    save_figure(fig, path, dpi=80)


def run_evaluation(variant: str) -> dict:
    load_params().variant(variant)  # an unknown name fails here, naming the known ones
    model = load_model(paths.checkpoint(variant))
    data = load_data()
    images, labels = data["test_images"], data["test_labels"]
    loss, acc, preds = evaluate(model, images, labels)
    out = paths.eval_dir(variant)
    metrics = {
        "test_acc": round(acc, 2),
        "test_loss": round(loss, 5),
        "errors": int((preds != labels).sum()),
        "params": count_params(model),
        "per_class_acc": per_class_accuracy(labels, preds),
    }
    with atomic_path(out / "confusion.csv") as tmp:
        pd.DataFrame({"actual": labels.numpy(), "predicted": preds.numpy()}).to_csv(tmp, index=False)
    plot_mistakes(images, labels, preds, out / "mistakes.png")
    write_text(out / "layers.md", f"# {variant}: layers\n\n"
               "rf: receptive field in input pixels per side; jump: input pixels between "
               "neighbouring outputs.\n\n" + layer_table(model).to_markdown(index=False) + "\n")
    write_json(out / "metrics.json", metrics)
    return metrics


@cli
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    name = parser.parse_args().variant
    m = run_evaluation(name)
    print(f"{name}: test acc {m['test_acc']:.2f}%  loss {m['test_loss']:.4f}  "
          f"{m['errors']} errors  {m['params']:,} params")


if __name__ == "__main__":
    main()
