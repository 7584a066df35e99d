"""train: train one variant by its resolved recipe.

    python -m stages.train VARIANT

Writes models/<v>.pt (weights + recipe) and reports/variants/<v>/train/ (history.csv: one row
per epoch; metrics.json: timing and device). Every file appears whole or not at all.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from stages import paths
from stages.config import load_params
from stages.engine import device_name, fit, pick_device
from stages.errors import cli
from stages.io import atomic_path, write_json
from stages.models import build_model, count_params, save_checkpoint
from stages.prepare import load_data


def train(variant: str) -> list[dict]:
    recipe = load_params().variant(variant).recipe
    device = pick_device(recipe.device)
    data = load_data()
    torch.manual_seed(recipe.seed)
    model = build_model(recipe.arch, recipe.dropout, data["mean"], data["std"])
    n_train = recipe.train_subset or len(data["train_labels"])
    print(f"{variant}: {recipe.arch}, {count_params(model):,} params, {recipe.epochs} epochs "
          f"on {device} ({n_train:,} training images)")
    t0 = time.perf_counter()
    history = fit(model, recipe, data, device)
    seconds = time.perf_counter() - t0
    out = paths.train_dir(variant)
    with atomic_path(out / "history.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")
    epoch_s = [row["seconds"] for row in history]
    write_json(out / "metrics.json", {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "seconds": round(seconds, 2),
        "epoch_seconds_median": round(sorted(epoch_s)[len(epoch_s) // 2], 2),
        "images_per_s_with_test_pass": round(n_train * len(history) / sum(epoch_s)),
    })
    save_checkpoint(paths.checkpoint(variant), model.cpu(), recipe.to_dict())
    return history


@cli
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    train(parser.parse_args().variant)


if __name__ == "__main__":
    main()
