"""evaluate: measure one trained variant (its first seed's checkpoint) on the 10,000 test images.
(Every seed's test accuracy per epoch is in its train/runs.csv.)

    python -m stages.evaluate VARIANT

Writes reports/variants/<v>/eval/: metrics.json (accuracy, loss, errors, per-class accuracy,
parameters) and layers.md; reports/confusion/<v>.csv (actual,predicted per test image, in
test-set order: DVC's confusion plot and the paired predictions of the verdicts) and
reports/mistakes/<v>.png."""
import argparse

import pandas as pd

from mnist_iter import cpu_math, files
from mnist_iter.cli import command
from mnist_iter.data import load_data
from mnist_iter.engine import evaluate
from mnist_iter.layers import layer_table, per_class_accuracy, plot_mistakes
from mnist_iter.checkpoint import load_model
from mnist_iter.models import count_params
from mnist_iter.recipe import load_config


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    name = parser.parse_args().variant
    recipe = load_config(files.config_file(name), name)
    cpu_math.enter(recipe.cpu_math)  # before any work: it may start the command again
    files.check_outputs(files.train_dir(name) / files.MANIFEST, f"train@{name}")
    model = load_model(files.checkpoint(name, recipe.seed), expect=(name, recipe.seed,
                                                                     recipe.to_dict()))
    data = load_data(files.DATA_FILE)
    images, labels = data["test_images"], data["test_labels"]
    loss, acc, preds = evaluate(model, images, labels)
    metrics = {"test_acc": round(acc, 2), "test_loss": round(loss, 5),
               "errors": int((preds != labels).sum()), "params": count_params(model),
               "per_class_acc": per_class_accuracy(labels, preds)}
    out_dir = files.eval_dir(name)
    with files.outputs(manifest=out_dir / files.MANIFEST) as out:
        pd.DataFrame({"actual": labels.numpy(), "predicted": preds.numpy()}).to_csv(
            out.path(files.confusion_file(name)), index=False)
        plot_mistakes(images, labels, preds, out, files.mistakes_file(name))
        out.text(out_dir / "layers.md", f"# {name}: layers\n\nrf: receptive field in input "
                 "pixels per side; jump: input pixels between neighbouring outputs.\n\n"
                 + layer_table(model).to_markdown(index=False) + "\n")
        out.json(out_dir / "metrics.json", metrics)
    print(f"{name}: test acc {acc:.2f}%  loss {loss:.4f}  {metrics['errors']} errors  "
          f"{metrics['params']:,} params")


if __name__ == "__main__":
    main()
