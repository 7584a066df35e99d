"""train: train one variant by its resolved recipe, once per seed (in parallel lanes on a CPU).

    python -m stages.train VARIANT

Writes models/<v>.pt (the first seed's weights and recipe) and reports/variants/<v>/train/:
history.csv (the first seed's epochs), runs.csv (every seed's epochs, with a `seed` column) and
metrics.json (device, arithmetic, threads, timing). All of them change together, at the end."""
import argparse
import statistics
import time

import pandas as pd
import torch

from mnist_iter import files
from mnist_iter.cli import command
from mnist_iter.data import load_data
from mnist_iter.device import device_name, pick_device, pick_speedups
from mnist_iter.engine import seed_recipes, train_seed
from mnist_iter.lanes import lane_count, run_seeds
from mnist_iter.models import checkpoint_content, count_params, model_for
from mnist_iter.recipe import load_params


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    name = parser.parse_args().variant
    recipe = load_params().variant(name).recipe
    device = pick_device(recipe.device)
    out_dir, ckpt = files.train_dir(name), files.checkpoint(name)
    files.check_writable(out_dir, ckpt.parent)
    for folder in (out_dir, ckpt.parent):
        files.sweep_stale(folder)
    data = load_data(files.DATA_FILE)
    recipes = seed_recipes(recipe)
    print(f"{name}: {recipe.arch}, {recipe.epochs} epochs on {device}, seeds "
          f"{recipes[0].seed}-{recipes[-1].seed}")
    start = time.perf_counter()
    results = run_seeds(recipes, files.DATA_FILE, device,
                        lambda r, log: train_seed(r, data, device, log))
    seconds = time.perf_counter() - start
    runs = pd.DataFrame([{"seed": r.seed, **row} for r, (_, history) in zip(recipes, results)
                         for row in history])
    model = model_for(recipe, data["mean"], data["std"])
    model.load_state_dict(results[0][0])
    with files.outputs() as out:
        pd.DataFrame(results[0][1]).to_csv(out.path(out_dir / "history.csv"), index=False,
                                           float_format="%.6g")
        runs.to_csv(out.path(out_dir / "runs.csv"), index=False, float_format="%.6g")
        out.json(out_dir / "metrics.json", {
            "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "arithmetic": pick_speedups(device, recipe).name,  # fp32, bf16 (amp where native)
            "threads": recipe.threads, "lanes": lane_count(len(recipes), recipe.threads, device),
            "params": count_params(model), "seeds": [r.seed for r in recipes],
            "seconds": round(seconds, 2),
            "epoch_seconds_median": round(statistics.median(runs["seconds"]), 2)})
        out.torch(ckpt, checkpoint_content(model, recipe.to_dict()))


if __name__ == "__main__":
    main()
