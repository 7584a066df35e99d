"""train: train one variant by its resolved recipe (configs/<v>.json), once per seed.

    python -m stages.train VARIANT

Writes models/<v>/seed<N>.pt (every seed's weights, with its recipe) and
reports/variants/<v>/train/: history.csv (the first seed's epochs), runs.csv (every seed's
epochs, with a `seed` column) and metrics.json (device, arithmetic, threads, timing), all at the
end; live/<v>.csv as the epochs come. A seed is kept in .seeds/ as it finishes: a run stopped
half-way and started again trains only the others. DVC leaves the outputs in place while the
stage runs (persist: true), so a run that stops or diverges keeps the previous ones."""
import argparse
import statistics

import torch

from mnist_iter import checkpoint, cpu_math, files
from mnist_iter.cli import command
from mnist_iter.device import device_name, pick_device, pick_speedups
from mnist_iter.lanes import run_recipe
from mnist_iter.models import count_params, model_for
from mnist_iter.recipe import load_config
from mnist_iter.progress import live_file
from mnist_iter.seedstore import SeedStore


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    name = parser.parse_args().variant
    recipe = load_config(files.config_file(name), name)
    cpu_math.enter(recipe.cpu_math)  # before any work: it may start the command again
    device = pick_device(recipe.device)
    out_dir, ckpt_dir = files.train_dir(name), files.checkpoint_dir(name)
    files.check_writable(out_dir, ckpt_dir)
    [files.sweep_stale(folder) for folder in (out_dir, ckpt_dir)]
    arithmetic, portable = cpu_math.describe(pick_speedups(device, recipe).name, device.type,
                                             recipe.cpu_math)
    print(f"{name}: {recipe.arch}, seeds {recipe.seed}-{recipe.seed + recipe.seeds - 1}, {arithmetic}")
    store = SeedStore.for_run(name, arithmetic, portable, device_name(device), test=True)
    done = run_recipe(recipe, device, store=store, name=name, live=live_file(name))
    model = model_for(recipe)
    with files.outputs(manifest=out_dir / files.MANIFEST) as out:
        first = done.runs[done.runs["seed"] == recipe.seed].drop(columns="seed")
        first.to_csv(out.path(out_dir / "history.csv"), index=False, float_format="%.6g")
        done.runs.to_csv(out.path(out_dir / "runs.csv"), index=False, float_format="%.6g")
        out.json(out_dir / "metrics.json", {
            "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "arithmetic": arithmetic, "portable": portable,  # "fp32, portable x86", True
            "threads": recipe.threads, "lanes": done.lanes,
            **({"seeds_together": True} if done.together else {}),  # one batched network
            "params": count_params(model), "seeds": [r.seed for r in done.recipes],
            "seconds": round(done.seconds, 2),
            "epoch_seconds_median": round(statistics.median(done.runs["seconds"]), 2)})
        for seed_recipe, state in zip(done.recipes, done.states):
            model.load_state_dict(state)
            out.torch(files.checkpoint(name, seed_recipe.seed),
                      checkpoint.content(model, name, seed_recipe.seed, recipe.to_dict()))
    kept = {files.checkpoint(name, r.seed) for r in done.recipes}
    files.remove_others(ckpt_dir, "seed*.pt", kept)  # seeds of an earlier run with more seeds


if __name__ == "__main__":
    main()
