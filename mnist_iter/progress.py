"""What a training run shows while it runs: a line saying what will train and about how long it
takes (from a step timed before the run), one bar over all its seed-steps with the time left
(a line a minute instead where the output is not a terminal: `dvc queue logs`), and each epoch's
numbers appended to live/<variant>.csv as they come: an output of the train stage that dvc.yaml
declares as plots (one line a seed), so that `dvc plots show` and the VS Code extension follow a
running experiment. When the run ends it holds every seed's epochs, as runs.csv does."""
from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from mnist_iter.engine import Watch

LIVE = Path("live")  # live/<variant>.csv: a train stage's output
LINE_EVERY_S = 60.0  # without a terminal: a progress line this often


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def estimate(step_s: float, recipe, seeds: int, lanes: int, steps_per_epoch: int,
             eval_images: int) -> float:
    """Seconds a run should take: each seed's steps plus its per-epoch evaluations (a forward
    pass costs about a third of a training step per image), in rounds of `lanes` seeds."""
    per_epoch = step_s * (steps_per_epoch + eval_images / (3 * recipe.batch_size))
    return recipe.epochs * per_epoch * math.ceil(seeds / max(1, lanes))


def live_file(variant: str) -> Path:
    return LIVE / f"{variant}.csv"


class Progress(Watch):
    def __init__(self, name: str, total_steps: int, live: Path | None = None,
                 kept: list[dict] = (), out=sys.stderr):
        self.name, self.total, self.done, self.out = name, total_steps, 0, out
        self.tty = out.isatty()
        self.bar = tqdm(total=total_steps, desc=name, unit="seed-step", file=out,
                        disable=not self.tty, smoothing=0.05, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                   "seed-steps [{elapsed}, {remaining} left]")
        self.start = self.last_line = time.monotonic()
        self.live, self.fields = live, None
        self.previous = live.read_bytes() if live is not None and live.is_file() else None
        if live is not None:  # a new run's curves, starting with the seeds it kept
            live.parent.mkdir(parents=True, exist_ok=True)
            live.unlink(missing_ok=True)
            for row in kept:
                self.epoch(row["seed"], {k: v for k, v in row.items() if k != "seed"})

    def tick(self, steps: int) -> None:
        self.done += steps
        self.bar.update(steps)
        now = time.monotonic()
        if not self.tty and now - self.last_line >= LINE_EVERY_S and self.done:
            self.last_line = now
            left = (now - self.start) / self.done * (self.total - self.done)
            print(f"{self.name}: {100 * self.done / self.total:.0f}% of {self.total:,} "
                  f"seed-steps, about {minutes(left)} left", file=self.out, flush=True)

    def log(self, line: str) -> None:
        if self.tty:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def epoch(self, seed: int, row: dict) -> None:
        """One epoch's numbers onto the live file (a `seed` column first)."""
        if self.live is None:
            return
        row = {"seed": seed, **row}
        new = self.fields is None
        self.fields = self.fields or list(row)
        with open(self.live, "a", newline="") as f:
            writer = csv.DictWriter(f, self.fields, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def close(self, finished: bool = True) -> None:
        """End the bar; a run that did not finish (refused, diverged, interrupted) puts the
        previous live file back, so that its outputs are as they were."""
        self.bar.close()
        if not finished and self.live is not None:
            if self.previous is None:
                self.live.unlink(missing_ok=True)
            else:
                partial = self.live.with_name(f".{self.live.name}.tmp")
                partial.write_bytes(self.previous)
                partial.replace(self.live)
