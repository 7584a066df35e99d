"""Run a variant's seeds in parallel lanes: worker processes with the CPU threads split between
them. Every run uses exactly `recipe.threads` threads, in a lane or alone, because the numbers
of a CPU run depend on its thread count; the lanes only decide how many run at once.

Cores for one stage: $TRAIN_CORES when set (give each of N parallel `dvc queue` workers its
share), else the CPUs this process may use. On a GPU the seeds run one after another.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import torch

from mnist_iter.cli import UserError


def available_cores() -> int:
    env = os.environ.get("TRAIN_CORES", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise UserError(f"TRAIN_CORES = {env!r}: must be a whole number of cores >= 1")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def lane_count(runs: int, threads: int, device: torch.device) -> int:
    if device.type != "cpu":
        return 1
    return max(1, min(runs, available_cores() // threads))


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


def _run_in_lane(recipe, data_file: str, device: str, keep_model: bool, test: bool):
    from mnist_iter.data import load_data
    from mnist_iter.engine import train_seed, without_test

    def log(line: str) -> None:
        print(f"  seed {recipe.seed}: {line}", flush=True)

    data = load_data(data_file)
    model, history = train_seed(recipe, data if test else without_test(data),
                                torch.device(device), log)
    return (model.cpu().state_dict() if keep_model else None), history


def run_seeds(recipes: list, data_file: Path, device: torch.device, train: Callable,
              log: Callable[[str], None] = print, test: bool = True) -> list[tuple]:
    """Train every recipe; returns (state_dict of the first, None for the others; history) in
    recipe order. `train(recipe, log)` trains in this process when one lane is enough (and
    must leave out the test set itself when `test` is False, as the lanes do)."""
    threads = recipes[0].threads
    lanes = lane_count(len(recipes), threads, device)
    if lanes == 1:
        torch.set_num_threads(threads)
        results = []
        for i, recipe in enumerate(recipes):
            log(f"seed {recipe.seed} ({i + 1} of {len(recipes)}), {threads} thread(s)")
            model, history = train(recipe, log)
            results.append((model.cpu().state_dict() if i == 0 else None, history))
        return results
    log(f"{len(recipes)} seeds in {lanes} parallel lanes of {threads} thread(s) each")
    pool = ProcessPoolExecutor(lanes, mp_context=get_context("spawn"), initializer=_lane_start,
                               initargs=(threads, os.getpid()))
    try:
        futures = [pool.submit(_run_in_lane, recipe, str(data_file), str(device), i == 0, test)
                   for i, recipe in enumerate(recipes)]
        results = [future.result() for future in futures]
    except BaseException:
        for process in list(pool._processes.values()):  # stop the lanes now, not after an epoch
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results
