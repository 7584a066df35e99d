"""Train registered variants on a lent GPU machine that has torch but no DVC, within a deadline,
and pack each finished variant's train outputs for `dvc commit` on a machine with DVC.

    MNIST_MIRROR=<folder with the four .gz files> python3 -m benchmarks.gpu_train \
        --seconds 500 --jobs 4 --out <folder> [VARIANT ...]

Runs download, prepare and configure as plain modules, then `python -m stages.train V` for each
variant (all variants by default), the most SGD steps first, `--jobs` at a time, each with its
seeds as one network (mnist_iter/batched.py; recipes with ema or compile: GPU_LANES processes).
Variants still running at the deadline are stopped and left out. Writes <out>/train.tar.gz (models/<v>/ and reports/variants/<v>/train/ of the
finished ones) and <out>/gpu_train.json (which finished, in how long). Back home:
`tar xzf train.tar.gz && dvc commit train@V ...` records them against the same code and params.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from mnist_iter import files
from mnist_iter.recipe import load_params


def steps(recipe) -> int:
    images = recipe.train_subset or 60_000 - recipe.val_size
    return recipe.seeds * recipe.epochs * math.ceil(images / recipe.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*")
    parser.add_argument("--seconds", type=float, default=500, help="deadline for the trainings")
    parser.add_argument("--jobs", type=int, default=4, help="variants trained at once")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    for stage in ("download", "prepare", "configure"):
        subprocess.run([sys.executable, "-m", f"stages.{stage}"], check=True)
    variants = load_params().variants
    names = sorted(args.variants or variants, key=lambda v: -steps(variants[v].recipe))
    args.out.mkdir(parents=True, exist_ok=True)
    logs = args.out / "logs"
    logs.mkdir(exist_ok=True)
    queue, running, done = list(names), {}, {}
    deadline = start + args.seconds
    while (queue or running) and time.perf_counter() < deadline:
        while queue and len(running) < args.jobs:
            name = queue.pop(0)
            env = {**os.environ, "GPU_LANES": str(variants[name].recipe.seeds)}
            log = open(logs / f"{name}.log", "w")
            running[name] = (subprocess.Popen([sys.executable, "-m", "stages.train", name],
                                              stdout=log, stderr=subprocess.STDOUT, env=env),
                             time.perf_counter())
        time.sleep(1)
        for name, (proc, began) in list(running.items()):
            if proc.poll() is not None:
                done[name] = {"rc": proc.returncode,
                              "seconds": round(time.perf_counter() - began, 1)}
                del running[name]
                print(f"{name}: rc {proc.returncode} in {done[name]['seconds']} s", flush=True)
    for name, (proc, _) in running.items():
        proc.kill()
        print(f"{name}: stopped at the deadline", flush=True)
    finished = [n for n in names if done.get(n, {}).get("rc") == 0]
    with tarfile.open(args.out / "train.tar.gz", "w:gz") as tar:
        for name in finished:
            tar.add(files.checkpoint_dir(name))
            tar.add(files.train_dir(name))
    (args.out / "gpu_train.json").write_text(json.dumps(
        {"finished": finished, "runs": done, "stopped": list(running), "not_started": queue,
         "seconds": round(time.perf_counter() - start, 1)}, indent=2) + "\n")
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as tar:
        tar.add(logs, arcname="logs")


if __name__ == "__main__":
    main()
