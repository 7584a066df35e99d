"""screen: train one selection candidate on the training images less its val_size held-out
ones, and measure it on those only; the test images are never loaded into the run.

    python -m search.screen CANDIDATE      (from the repository root; dvc runs it there)

Candidates live under `screen:` in search/params.yaml (same keys as a variant); the stage runs
the resolved recipe the search's configure wrote (search/configs/<c>.json). Writes
search/results/<c>.json (validation last-3 mean, worst, final; parameters; seeds) and
search/runs/<c>.csv (every seed's epochs). No checkpoint: a candidate is only compared."""
import argparse

from mnist_iter import cpu_math, files
from mnist_iter.cli import command
from mnist_iter.device import device_name, pick_device, pick_speedups
from mnist_iter.lanes import run_recipe
from mnist_iter.models import count_params, model_for
from mnist_iter.recipe import load_config
from mnist_iter.seedstore import SeedStore
from mnist_iter.stats import held_out


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate")
    name = parser.parse_args().candidate
    recipe = load_config(files.search_config(name), name)
    cpu_math.enter(recipe.cpu_math)  # before any work: it may start the command again
    device = pick_device(recipe.device)
    metrics, runs_file = files.screen_metrics(name), files.screen_runs(name)
    files.check_writable(metrics.parent, runs_file.parent)
    for folder in (metrics.parent, runs_file.parent):
        files.sweep_stale(folder)
    print(f"{name}: {recipe.arch} {recipe.widths or ''}, {recipe.epochs} epochs on {device} "
          f"({pick_speedups(device, recipe).name}), {recipe.val_size:,} held-out images, seeds "
          f"{recipe.seed}-{recipe.seed + recipe.seeds - 1}")
    speed = pick_speedups(device, recipe).name
    arithmetic, portable = cpu_math.describe(speed, device.type, recipe.cpu_math)
    store = SeedStore.for_run(f"search-{name}", arithmetic, portable, device_name(device),
                              test=False)
    done = run_recipe(recipe, device, test=False, store=store, name=name)
    summary = held_out(done.runs, count_params(model_for(recipe)))
    summary["minutes"] = round(done.seconds / 60, 1)
    with files.outputs() as out:
        done.runs.to_csv(out.path(runs_file), index=False, float_format="%.6g")
        out.json(metrics, summary)
    print(f"{name}: {summary['weights']:,} params, validation last-3 {summary['val_last3']:.2f}%, "
          f"worst {summary['val_worst3']:.2f}%, final {summary['val_acc']:.2f}%")


if __name__ == "__main__":
    main()
