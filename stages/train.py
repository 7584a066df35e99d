"""train: train one variant by its resolved recipe, once per seed.

    python -m stages.train VARIANT

A recipe with `seeds: N` trains N independent runs with seeds seed, seed+1, ..., seed+N-1.
Writes models/<v>.pt (the first seed's weights + recipe) and reports/variants/<v>/train/:
history.csv (the first seed's run, one row per epoch: the curve DVC plots), runs.csv (every
seed's rows, with a `seed` column: what the report averages) and metrics.json (timing, device).
Every file appears whole or not at all, and only after every seed has finished.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import TYPE_CHECKING

import torch

from stages import paths
from stages.config import Recipe, load_params
from stages.engine import device_name, fit, pick_device, pick_speedups
from stages.errors import cli
from stages.io import atomic_path, write_json
from stages.models import build_model, count_params, save_checkpoint
from stages.prepare import load_data

if TYPE_CHECKING:
    import pandas as pd


def train_seed(recipe: Recipe, data: dict, device: torch.device,
               log=print) -> tuple[torch.nn.Module, list]:
    torch.manual_seed(recipe.seed)  # weight init
    model = build_model(recipe.arch, recipe.dropout, data["mean"], data["std"])
    return model, fit(model, recipe, data, device, log)


def train(variant: str) -> pd.DataFrame:
    import pandas as pd  # here, not at the top: bench imports train_seed and needs no pandas

    recipe = load_params().variant(variant).recipe
    device = pick_device(recipe.device)
    data = load_data()
    seeds = list(range(recipe.seed, recipe.seed + recipe.seeds))
    t0 = time.perf_counter()
    runs, first = [], None
    for i, seed in enumerate(seeds, 1):
        print(f"{variant}: {recipe.arch}, {recipe.epochs} epochs on {device}, seed {seed} "
              f"({i} of {len(seeds)})")
        model, history = train_seed(dataclasses.replace(recipe, seed=seed), data, device)
        if first is None:
            first = model, history  # the checkpoint and the plotted curve
        runs += [{"seed": seed, **row} for row in history]
    seconds = time.perf_counter() - t0
    model, history = first
    runs = pd.DataFrame(runs)
    out = paths.train_dir(variant)
    for name, table in (("history.csv", pd.DataFrame(history)), ("runs.csv", runs)):
        with atomic_path(out / name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "metrics.json", {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "arithmetic": pick_speedups(device, recipe).name,  # fp32, bf16 (amp where native), ...
        "params": count_params(model),
        "seeds": seeds,
        "seconds": round(seconds, 2),
        "epoch_seconds_median": round(statistics.median(runs["seconds"]), 2),
    })
    save_checkpoint(paths.checkpoint(variant), model.cpu(), recipe.to_dict())
    return runs


@cli
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    train(parser.parse_args().variant)


if __name__ == "__main__":
    main()
