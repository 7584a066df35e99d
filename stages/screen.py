"""screen: train one selection candidate on the training images less its val_size held-out
ones, and measure it on those only; the test images are never loaded into the run.

    python -m stages.screen CANDIDATE

Candidates live under `screen:` in params.yaml (same keys as a variant). Writes
reports/screen/<c>.json (validation last-3 mean, worst, final; parameters; seeds) and
reports/screen/runs/<c>.csv (every seed's epochs). No checkpoint: a candidate is only compared."""
import argparse
import time

import pandas as pd

from mnist_iter import files
from mnist_iter.cli import command
from mnist_iter.data import load_data
from mnist_iter.device import pick_device, pick_speedups
from mnist_iter.engine import seed_recipes, train_seed, without_test
from mnist_iter.lanes import run_seeds
from mnist_iter.models import count_params, model_for
from mnist_iter.recipe import load_params
from mnist_iter.stats import held_out


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate")
    name = parser.parse_args().candidate
    recipe = load_params().candidate(name).recipe
    device = pick_device(recipe.device)
    metrics, runs_file = files.screen_metrics(name), files.screen_runs(name)
    files.check_writable(metrics.parent, runs_file.parent)
    data = without_test(load_data(files.DATA_FILE))
    recipes = seed_recipes(recipe)
    print(f"{name}: {recipe.arch} {recipe.widths or ''}, {recipe.epochs} epochs on {device} "
          f"({pick_speedups(device, recipe).name}), "
          f"{recipe.val_size:,} held-out images, seeds {recipes[0].seed}-{recipes[-1].seed}")
    start = time.perf_counter()
    results = run_seeds(recipes, files.DATA_FILE, device,
                        lambda r, log: train_seed(r, data, device, log), test=False)
    seconds = time.perf_counter() - start
    runs = pd.DataFrame([{"seed": r.seed, **row} for r, (_, history) in zip(recipes, results)
                         for row in history])
    summary = held_out(runs, count_params(model_for(recipe)))
    summary["minutes"] = round(seconds / 60, 1)
    with files.outputs() as out:
        runs.to_csv(out.path(runs_file), index=False, float_format="%.6g")
        out.json(metrics, summary)
    print(f"{name}: {summary['weights']:,} params, validation last-3 {summary['val_last3']:.2f}%, "
          f"worst {summary['val_worst3']:.2f}%, final {summary['val_acc']:.2f}%")


if __name__ == "__main__":
    main()
