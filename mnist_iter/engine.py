"""The training engine: MNIST held on the device as uint8, batches sliced from a randperm,
augmentation for the whole batch in one grid_sample, metrics accumulated on the device and read
once per epoch. No DataLoader, no PIL, no per-sample Python, no host sync inside the step loop.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mnist_iter.augment import augment
from mnist_iter.cli import UserError, unchanged_note
from mnist_iter.device import Speedups, autocast, pick_speedups, place
from mnist_iter.models import model_for
from mnist_iter.schedule import Schedule, make_optimizer

EVAL_BATCH = 1000  # images per forward pass when evaluating; memory only, not results
CHANCE_ACC = 12.0  # % at or under which a run ends "at chance": the commonest digit is 11.35%
JUDGED_STEPS = 500  # SGD steps a run needs before ending at chance counts as diverged


class Diverged(UserError):
    pass


def check_converged(history: list[dict], steps: int, lr: float) -> None:
    """Diverged when any number of any epoch is NaN or inf, or when a run of at least
    JUDGED_STEPS steps ends at chance accuracy (held-out, else training): nothing is kept, and
    the message says what became of the previous outputs."""
    for row in history:
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            raise Diverged(f"training diverged in epoch {row['epoch']} ({bad[0]} {row[bad[0]]}) "
                           f"at lr {lr:g}; try a smaller lr ({unchanged_note()})")
    last = history[-1]
    key = next(f"{k}_acc" for k in ("test", "val", "train") if f"{k}_acc" in last)
    if steps >= JUDGED_STEPS and last[key] <= CHANCE_ACC:
        raise Diverged(f"training diverged: {key} {last[key]:.2f}% after {steps:,} steps is "
                       f"chance level (<= {CHANCE_ACC}%) at lr {lr:g}; try a smaller lr "
                       f"({unchanged_note()})")


class Watch:
    """Who hears of a training's progress: `tick(steps)` after steps (seed-steps), `epoch(seed,
    row)` after each epoch's numbers. This one ignores both (mnist_iter/progress.py shows them)."""

    def tick(self, steps: int) -> None:
        pass

    def epoch(self, seed: int, row: dict) -> None:
        pass


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 28, 28) on the device
    labels: torch.Tensor  # int64 (N,) on the device


def without_test(data: dict) -> dict:
    """The data of a selection run: the training images only, so nothing can read the test set."""
    return {k: v for k, v in data.items() if not k.startswith("test_")}


def make_splits(data: dict, recipe, device: torch.device) -> dict[str, Split]:
    """train (the first train_subset images of what is left), val (the last val_size training
    images, when val_size > 0) and test (unless the data has none: `without_test`), moved to
    the device once."""
    images, labels = data["train_images"], data["train_labels"]
    splits = {}
    if recipe.val_size:
        splits["val"] = Split(images[-recipe.val_size:], labels[-recipe.val_size:])
        images, labels = images[:-recipe.val_size], labels[:-recipe.val_size]
    if recipe.train_subset:
        images, labels = images[:recipe.train_subset], labels[:recipe.train_subset]
    splits["train"] = Split(images, labels)
    if "test_images" in data:
        splits["test"] = Split(data["test_images"], data["test_labels"])
    return {k: Split(s.images.to(device), s.labels.to(device)) for k, s in splits.items()}


def splits_line(splits: dict[str, Split]) -> str:
    """'59,000 training images, 1,000 held out for validation': what a run trains on."""
    held_out = f", {len(splits['val'].labels):,} held out for validation" if "val" in splits else ""
    return f"{len(splits['train'].labels):,} training images{held_out}"


def as_input(images_u8: torch.Tensor, speed: Speedups | None = None) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1], the models' input, in the default
    float dtype (float32; the tests compare training paths in float64)."""
    x = images_u8.unsqueeze(1).to(torch.get_default_dtype()).div_(255)
    if speed is not None and speed.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             speed: Speedups | None = None) -> tuple[float, float, torch.Tensor]:
    """Mean NLL loss, accuracy in percent, and the predicted labels of uint8 images. Always in
    fp32, whatever arithmetic trained the model (`speed` only sets the memory format): the
    accuracy of the weights, the number the evaluate stage gets from the checkpoint."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    preds = []
    for start in range(0, len(labels), EVAL_BATCH):
        x, y = as_input(images[start:start + EVAL_BATCH], speed), labels[start:start + EVAL_BATCH]
        out = model(x)
        loss_sum += F.nll_loss(out, y, reduction="sum")
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    acc = (pred == labels).float().mean() * 100
    return (loss_sum / len(labels)).item(), acc.item(), pred


def batches(count: int, batch_size: int, gen: torch.Generator,
            device: torch.device) -> Iterator[torch.Tensor]:
    perm = torch.randperm(count, device=device, generator=gen)
    for i in range(math.ceil(count / batch_size)):
        yield perm[i * batch_size:(i + 1) * batch_size]


def make_step(model: nn.Module, opt: torch.optim.Optimizer, schedule: Schedule | None,
              device: torch.device, speed: Speedups, label_smoothing: float = 0.0,
              average=None) -> Callable:
    """One SGD step on a batch: forward (autocast when asked), loss in fp32, backward, update
    (and the weight average's, when there is one)."""
    forward = torch.compile(model, mode=speed.compile_mode) if speed.compile_mode else model

    def step(x: torch.Tensor, y: torch.Tensor):
        with autocast(device, speed):
            out = forward(x)
        out = out.to(torch.get_default_dtype())  # fp32 after autocast
        loss = F.nll_loss(out, y)
        if label_smoothing:  # the inputs are log-probabilities: smoothing mixes in their mean
            loss = (1 - label_smoothing) * loss - label_smoothing * out.mean(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update_parameters(model)
        if schedule is not None:
            schedule.after_batch()
        return loss, out

    return step


def train_epoch(model: nn.Module, step: Callable, train: Split, recipe, gen: torch.Generator,
                speed: Speedups, tick: Callable[[int], None] = lambda steps: None
                ) -> tuple[float, float]:
    """One pass over the training split; returns mean loss and accuracy (%) of the pass.
    `tick(1)` after every step (it reads no device tensor, so it forces no sync)."""
    model.train()
    device = train.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for idx in batches(len(train.labels), recipe.batch_size, gen, device):
        x, y = augment(as_input(train.images[idx], speed), recipe, gen), train.labels[idx]
        loss, out = step(x, y)
        loss_sum += loss.detach() * len(idx)
        correct += (out.detach().argmax(1) == y).sum()
        tick(1)
    count = len(train.labels)
    return (loss_sum / count).item(), correct.item() * 100 / count  # exact; MPS has no float64


def fit(model: nn.Module, recipe, data: dict, device: torch.device,
        log: Callable[[str], None] = print, watch: Watch | None = None
        ) -> tuple[nn.Module, list[dict]]:
    """Train `model` by `recipe`; returns the network to keep (`model`, or with `ema` the
    average of its weights) and one row of metrics per epoch, measured on that network.
    `watch` hears of every step and every epoch as they happen (mnist_iter/progress.py)."""
    watch = watch or Watch()
    torch.manual_seed(recipe.seed)  # weight init happened before; dropout draws from this
    gen = torch.Generator(device=device).manual_seed(recipe.seed)  # shuffling and augmentation
    speed = pick_speedups(device, recipe)
    place(model, device, speed)
    splits = make_splits(data, recipe, device)
    train = splits["train"]
    log(splits_line(splits))
    opt = make_optimizer(model.parameters(), recipe)
    steps_per_epoch = math.ceil(len(train.labels) / recipe.batch_size)
    schedule = Schedule(opt, recipe, steps_per_epoch)
    average = weight_average(model, recipe.ema)
    step = make_step(model, opt, schedule, device, speed, recipe.label_smoothing, average)
    kept = model if average is None else average.module
    history = []
    for epoch in range(1, recipe.epochs + 1):
        start, lr = time.perf_counter(), schedule.lr
        train_loss, train_acc = train_epoch(model, step, train, recipe, gen, speed, watch.tick)
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc}
        for name in ("val", "test"):
            if name in splits:
                loss, acc, _ = evaluate(kept, splits[name].images, splits[name].labels, speed)
                row |= {f"{name}_loss": loss, f"{name}_acc": acc}
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        check_converged(history, epoch * steps_per_epoch, lr)
        schedule.after_epoch(row)
        log(format_row(row, recipe.epochs))
        watch.epoch(recipe.seed, row)
    return kept, history


def time_step(recipe, data: dict, device: torch.device, steps: int = 5) -> float:
    """Median seconds of one training step of the recipe's network at its batch size, with its
    augmentation, after two warm-up steps: what a run's estimate is made of. It draws from
    generators of its own (a run seeds its own), so it changes no run's numbers."""
    torch.manual_seed(recipe.seed)
    model = model_for(recipe, data["mean"], data["std"])
    speed = pick_speedups(device, recipe)
    place(model, device, speed)
    step = make_step(model, make_optimizer(model.parameters(), recipe), None, device, speed,
                     recipe.label_smoothing)
    gen = torch.Generator(device=device).manual_seed(0)
    images = data["train_images"][:recipe.batch_size].to(device)
    labels = data["train_labels"][:recipe.batch_size].to(device)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        step(augment(as_input(images, speed), recipe, gen), labels)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def weight_average(model: nn.Module, decay: float):
    """An exponential moving average of the weights and of BatchNorm's statistics (torch's
    AveragedModel), or None when decay is 0."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def format_row(row: dict, epochs: int) -> str:
    width = len(str(epochs))
    held = "".join(f"  {name} loss {row[name + '_loss']:.4f} acc {row[name + '_acc']:6.2f}%"
                   for name in ("val", "test") if name + "_loss" in row)
    return (f"epoch {row['epoch']:>{width}}/{epochs}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%{held}  "
            f"{row['seconds']:5.1f}s")


def train_seed(recipe, data: dict, device: torch.device, log: Callable[[str], None] = print,
               watch: Watch | None = None) -> tuple[nn.Module, list[dict]]:
    """Build the recipe's network (weights from its seed) and train it; (model, history)."""
    torch.manual_seed(recipe.seed)  # weight init
    return fit(model_for(recipe, data["mean"], data["std"]), recipe, data, device, log, watch)


def seed_recipes(recipe) -> list:
    """One recipe per run: seeds seed, seed + 1, ..., each with seeds = 1."""
    return [dataclasses.replace(recipe, seed=recipe.seed + i, seeds=1)
            for i in range(recipe.seeds)]
