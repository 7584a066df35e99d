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

import dataclasses
import math
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from mnist_iter import batched, cpu_math
from mnist_iter.cli import env_count
from mnist_iter.data import load_data
from mnist_iter.engine import (Watch, make_splits, seed_recipes, time_step, train_seed,
                               without_test)
from mnist_iter.files import DATA_FILE
from mnist_iter.progress import Progress, estimate, minutes
from mnist_iter.seedstore import SeedStore, seed_ranges


def available_cores() -> int:
    cores = env_count("TRAIN_CORES", "cores")
    if cores:
        return cores
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_lanes() -> int:
    """Seeds trained at once on one GPU: $GPU_LANES (default 1). A tiny network leaves most of
    a GPU idle, so several processes on it train more seeds per minute."""
    return env_count("GPU_LANES", "processes") or 1


def lane_count(runs: int, threads: int, device: torch.device) -> int:
    lanes = gpu_lanes() if device.type != "cpu" else available_cores() // threads
    return max(1, min(runs, lanes))


def _watch_parent(parent: int) -> None:
    """A lane whose stage was killed (kill -9) stops too, instead of training on for nobody."""
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(1)


_QUEUE = None  # in a lane: where its lines, steps and epochs go (the stage's Progress shows them)


def _lane_start(threads: int, parent: int, queue) -> None:
    global _QUEUE
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stage's to handle
    torch.set_num_threads(threads)
    _QUEUE = queue
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class _LaneWatch(Watch):
    """A lane's steps and epochs, sent to the stage's process (steps at most twice a second)."""

    def __init__(self, queue):
        self.queue, self.steps, self.sent = queue, 0, time.monotonic()

    def tick(self, steps: int) -> None:
        self.steps += steps
        if time.monotonic() - self.sent >= 0.5:
            self.queue.put(("tick", self.steps))
            self.steps, self.sent = 0, time.monotonic()

    def epoch(self, seed: int, row: dict) -> None:
        self.queue.put(("tick", self.steps))
        self.steps = 0
        self.queue.put(("epoch", seed, row))


def _train(recipe, data: dict, device: torch.device, test: bool,
           log: Callable[[str], None], watch: Watch | None = None) -> tuple[dict, list[dict]]:
    """One seed, in this process: its trained weights (on the CPU) and its epochs. `test=False`
    hands the run no test images at all."""
    model, history = train_seed(recipe, data if test else without_test(data), device, log, watch)
    return model.cpu().state_dict(), history


def _run_in_lane(recipe, data_file: str, device: str, test: bool, store: SeedStore | None):
    def log(line: str) -> None:
        line = f"  seed {recipe.seed}: {line}"
        _QUEUE.put(("log", line)) if _QUEUE is not None else print(line, flush=True)

    watch = _LaneWatch(_QUEUE) if _QUEUE is not None else None
    result = _train(recipe, load_data(data_file), torch.device(device), test, log, watch)
    if store is not None:  # kept the moment it finishes: a stage killed later still has it
        store.save(recipe, *result)
    return result


@dataclass
class SeedRuns:
    """A recipe's runs, one per seed, in seed order."""
    recipes: list  # each seed's recipe (seed = its seed, seeds = 1)
    states: list[dict]  # each seed's trained weights, on the CPU
    runs: pd.DataFrame  # every seed's epochs, with a `seed` column
    seconds: float  # wall time of all of them
    lanes: int  # how many ran at once
    together: bool = False  # trained as one batched network (mnist_iter/batched.py)
    kept: list[int] = dataclasses.field(default_factory=list)  # seeds taken from the store


def run_recipe(recipe, device: torch.device, data_file: Path = DATA_FILE, test: bool = True,
               log: Callable[[str], None] = print, store: SeedStore | None = None,
               name: str | None = None, live: Path | None = None) -> SeedRuns:
    """Train every seed of `recipe` (seed, seed + 1, ...): in this process when one lane is
    enough, else in parallel lanes (which inherit this process's arithmetic, checked here).
    `test=False` leaves the test images out of every run (a selection run). With a `store`,
    a seed it holds for the same key is taken from it instead of trained, and every seed
    trained is saved there as it finishes. With a `name`, the run says what it will train and
    about how long it takes, then shows its progress, and appends each epoch to `live` (a CSV)
    when given (mnist_iter/progress.py). A run that diverged stops them all with `Diverged`."""
    cpu_math.check(recipe.cpu_math, device.type)
    recipes = seed_recipes(recipe)
    kept = {r.seed: found for r in recipes
            if store is not None and (found := store.load(r)) is not None}
    todo = [r for r in recipes if r.seed not in kept]
    if kept:
        log(f"seeds {seed_ranges(list(kept))} kept from an earlier run (same recipe, code and "
            f"arithmetic); " + (f"training {seed_ranges([r.seed for r in todo])}" if todo
                                else "nothing left to train"))
    threads = recipe.threads
    together = bool(todo) and batched.batches_seeds(device, recipe)
    lanes = len(todo) if together else lane_count(len(todo), threads, device)
    data = load_data(data_file) if todo and (name or together or lanes == 1) else None
    kept_rows = [{"seed": seed, **row} for seed, (_, history) in sorted(kept.items())
                 for row in history]
    watch = _progress(name, recipe, todo, lanes, together, data, device, log, live, kept_rows) \
        if name and todo else None
    log = watch.log if watch else log
    start = time.perf_counter()
    trained, finished = [], False
    try:
        if together:
            trained = batched.train_seeds(todo, data if test else without_test(data), device,
                                          log, watch)
            if store is not None:
                for seed_recipe, result in zip(todo, trained):
                    store.save(seed_recipe, *result)
        elif lanes == 1 and todo:
            torch.set_num_threads(threads)
            for i, seed_recipe in enumerate(todo):
                log(f"seed {seed_recipe.seed} ({i + 1} of {len(todo)}), {threads} thread(s)")
                trained.append(_train(seed_recipe, data, device, test, log, watch))
                if store is not None:
                    store.save(seed_recipe, *trained[-1])
        elif todo:
            log(f"{len(todo)} seeds in {lanes} parallel lanes of {threads} thread(s) each")
            trained = _in_lanes(todo, data_file, device, lanes, test, store, watch)
        finished = True
    finally:
        if watch:
            watch.close(finished)
    seconds = time.perf_counter() - start
    done = dict(kept) | {r.seed: result for r, result in zip(todo, trained)}
    results = [done[r.seed] for r in recipes]
    runs = pd.DataFrame([{"seed": r.seed, **row} for r, (_, history) in zip(recipes, results)
                         for row in history])
    return SeedRuns(recipes, [state for state, _ in results], runs, seconds, lanes, together,
                    sorted(kept))


def _progress(name: str, recipe, todo: list, lanes: int, together: bool, data: dict,
              device: torch.device, log: Callable[[str], None], live: Path | None,
              kept: list[dict]) -> Progress:
    """The start line (what trains, where, about how long) and the run's progress bar."""
    splits = make_splits(data, recipe, torch.device("cpu"))  # views: what each run will see
    steps_per_epoch = math.ceil(len(splits["train"].labels) / recipe.batch_size)
    held = sum(len(split.labels) for name, split in splits.items() if name != "train")
    how = "as one network" if together else f"in {lanes} lane(s) of {recipe.threads} thread(s)"
    line = (f"{name}: {len(todo)} seed(s) x {recipe.epochs} epochs x {steps_per_epoch:,} steps "
            f"{how} on {device}")
    if together or recipe.compile != "none":
        log(f"{line}; the bar estimates the time left once it starts")
    else:
        torch.set_num_threads(recipe.threads)
        step_s = time_step(recipe, data, device)
        seconds = estimate(step_s, recipe, len(todo), lanes, steps_per_epoch, held)
        log(f"{line}; about {minutes(seconds)} (a step measured at {step_s * 1000:.0f} ms)")
    return Progress(name, len(todo) * recipe.epochs * steps_per_epoch, live, kept)


def _in_lanes(recipes: list, data_file: Path, device: torch.device, lanes: int,
              test: bool, store: SeedStore | None, watch: Progress | None) -> list[tuple]:
    context = get_context("spawn")
    queue = context.Queue() if watch else None
    pool = ProcessPoolExecutor(lanes, mp_context=context, initializer=_lane_start,
                               initargs=(recipes[0].threads, os.getpid(), queue))
    shown = threading.Thread(target=_show, args=(queue, watch), daemon=True)
    if watch:
        shown.start()
    try:
        futures = [pool.submit(_run_in_lane, recipe, str(data_file), str(device), test, store)
                   for recipe in recipes]
        results = [future.result() for future in futures]
    except BaseException:
        for process in list(pool._processes.values()):  # stop the lanes now, not after an epoch
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if watch:
            queue.put(None)
            shown.join(timeout=5)
    pool.shutdown()
    return results


def _show(queue, watch: Progress) -> None:
    """The lanes' lines, steps and epochs, shown by the stage's process until None."""
    while (message := queue.get()) is not None:
        kind, *rest = message
        {"log": watch.log, "tick": watch.tick, "epoch": watch.epoch}[kind](*rest)
