"""Run a recipe's seeds (`run_recipe`), in parallel lanes: worker processes with the CPU
threads split between them. Every run uses exactly `recipe.threads` threads, in a lane or alone,
because the numbers of a CPU run depend on its thread count; the lanes only decide how many run
at once.

Cores for one stage: $TRAIN_CORES when set (give each of N parallel `dvc queue` workers its
share), else the CPUs this process may use. On a GPU the seeds train together as one network
(mnist_iter/batched.py); where they cannot (`ema`, `compile`, $GPU_BATCH=0) they run one after
another, or $GPU_LANES of them at once.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from mnist_iter import batched, cpu_math
from mnist_iter.cli import UserError
from mnist_iter.data import load_data
from mnist_iter.engine import seed_recipes, train_seed, without_test
from mnist_iter.files import DATA_FILE


def _count(name: str, what: str) -> int | None:
    """$name as a whole number >= 1 (ASCII digits only: '²' and '٣' are digits to Python too),
    None when unset, else one line saying what it must be."""
    env = os.environ.get(name, "").strip()
    if not env:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", env) or int(env) < 1:
        raise UserError(f"{name} = {env!r}: must be a whole number of {what} >= 1")
    return int(env)


def available_cores() -> int:
    cores = _count("TRAIN_CORES", "cores")
    if cores:
        return cores
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_lanes() -> int:
    """Seeds trained at once on one GPU: $GPU_LANES (default 1). A tiny network leaves most of
    a GPU idle, so several processes on it train more seeds per minute."""
    return _count("GPU_LANES", "processes") or 1


def lane_count(runs: int, threads: int, device: torch.device) -> int:
    lanes = gpu_lanes() if device.type != "cpu" else available_cores() // threads
    return max(1, min(runs, lanes))


def _watch_parent(parent: int) -> None:
    """A lane whose stage was killed (kill -9) stops too, instead of training on for nobody."""
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(1)


def _lane_start(threads: int, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage's to handle
    torch.set_num_threads(threads)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _train(recipe, data: dict, device: torch.device, test: bool,
           log: Callable[[str], None]) -> tuple[dict, list[dict]]:
    """One seed, in this process: its trained weights (on the CPU) and its epochs. `test=False`
    hands the run no test images at all."""
    model, history = train_seed(recipe, data if test else without_test(data), device, log)
    return model.cpu().state_dict(), history


def _run_in_lane(recipe, data_file: str, device: str, test: bool):
    def log(line: str) -> None:
        print(f"  seed {recipe.seed}: {line}", flush=True)

    return _train(recipe, load_data(data_file), torch.device(device), test, log)


@dataclass
class SeedRuns:
    """A recipe's runs, one per seed, in seed order."""
    recipes: list  # each seed's recipe (seed = its seed, seeds = 1)
    states: list[dict]  # each seed's trained weights, on the CPU
    runs: pd.DataFrame  # every seed's epochs, with a `seed` column
    seconds: float  # wall time of all of them
    lanes: int  # how many ran at once
    together: bool = False  # trained as one batched network (mnist_iter/batched.py)


def run_recipe(recipe, device: torch.device, data_file: Path = DATA_FILE, test: bool = True,
               log: Callable[[str], None] = print) -> SeedRuns:
    """Train every seed of `recipe` (seed, seed + 1, ...): in this process when one lane is
    enough, else in parallel lanes (which inherit this process's arithmetic, checked here).
    `test=False` leaves the test images out of every run (a selection run). A run that diverged
    stops them all with `Diverged`."""
    cpu_math.check(recipe.cpu_math, device.type)
    recipes = seed_recipes(recipe)
    threads = recipe.threads
    together = batched.batches_seeds(device, recipe)
    lanes = len(recipes) if together else lane_count(len(recipes), threads, device)
    start = time.perf_counter()
    if together:
        data = load_data(data_file)
        results = batched.train_seeds(recipes, data if test else without_test(data), device, log)
    elif lanes == 1:
        torch.set_num_threads(threads)
        data = load_data(data_file)
        results = []
        for i, seed_recipe in enumerate(recipes):
            log(f"seed {seed_recipe.seed} ({i + 1} of {len(recipes)}), {threads} thread(s)")
            results.append(_train(seed_recipe, data, device, test, log))
    else:
        log(f"{len(recipes)} seeds in {lanes} parallel lanes of {threads} thread(s) each")
        results = _in_lanes(recipes, data_file, device, lanes, test)
    seconds = time.perf_counter() - start
    runs = pd.DataFrame([{"seed": r.seed, **row} for r, (_, history) in zip(recipes, results)
                         for row in history])
    return SeedRuns(recipes, [state for state, _ in results], runs, seconds, lanes, together)


def _in_lanes(recipes: list, data_file: Path, device: torch.device, lanes: int,
              test: bool) -> list[tuple]:
    pool = ProcessPoolExecutor(lanes, mp_context=get_context("spawn"), initializer=_lane_start,
                               initargs=(recipes[0].threads, os.getpid()))
    try:
        futures = [pool.submit(_run_in_lane, recipe, str(data_file), str(device), test)
                   for recipe in recipes]
        results = [future.result() for future in futures]
    except BaseException:
        for process in list(pool._processes.values()):  # stop the lanes now, not after an epoch
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results
