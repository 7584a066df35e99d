"""The training engine: MNIST held on the device as uint8, batches sliced from a randperm,
rotation done for the whole batch in one grid_sample, metrics accumulated on the device and read
once per epoch. No DataLoader, no PIL, no per-sample Python, no host sync inside the step loop.
"""
from __future__ import annotations

import contextlib
import math
import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stages.config import Recipe
from stages.errors import UserError

EVAL_BATCH = 1000  # images per forward pass when evaluating; memory only, not results
ONECYCLE_DIV = 25.0  # one-cycle starts at max_lr / this (OneCycleLR's default div_factor)
ONECYCLE_MOMENTUM = 0.95  # ... and at this momentum, cycled down to 0.85 (OneCycleLR's default)


class Diverged(UserError):
    pass


def pick_device(name: str = "auto") -> torch.device:
    """auto -> CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device = {name!r}: CUDA is not available here; use auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device = 'mps': MPS is not available here; use auto or cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Speedups:
    channels_last: bool
    cudnn_benchmark: bool  # let cuDNN time its convolution algorithms and keep the fastest
    compile_mode: str | None  # torch.compile mode, None = eager
    amp_dtype: torch.dtype | None  # autocast dtype, None = fp32

    @property
    def name(self) -> str:
        """'fp32', 'bf16', 'compiled' or 'bf16_compiled': what changes the arithmetic."""
        parts = (["bf16"] if self.amp_dtype is not None else []) + (
            ["compiled"] if self.compile_mode else [])
        return "_".join(parts) or "fp32"


PLAIN = Speedups(False, False, None, None)  # fp32 eager, as the write-ups train


def device_name(device: torch.device) -> str:
    """'NVIDIA H100 80GB HBM3', 'Intel(R) Xeon(R) Processor @ 2.10GHz', ..."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 / AMX), so autocast pays off."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def pick_speedups(device: torch.device, recipe: Recipe) -> Speedups:
    """CUDA: channels_last and cuDNN autotuning; every device: the recipe's compile mode; `amp`
    means bf16 autocast on CUDA and on CPUs with native bf16, and is ignored elsewhere (MPS,
    older CPUs). On this project's CPU channels_last made a training step slower (fp32 42 -> 66
    ms, bf16 31 -> 57 ms): the convolutions and pooling gain, but BatchNorm's channels-last CPU
    kernel is ~5x slower than its NCHW one on these 8-12 channel maps, so CPUs keep NCHW."""
    cuda = device.type == "cuda"
    amp_ok = cuda or (device.type == "cpu" and cpu_has_bf16())
    return Speedups(
        channels_last=cuda,
        cudnn_benchmark=cuda,
        compile_mode=recipe.compile if recipe.compile != "none" else None,
        amp_dtype=torch.bfloat16 if recipe.amp and amp_ok else None,
    )


def place(model: nn.Module, device: torch.device, speed: Speedups) -> nn.Module:
    """Move the model to the device in the memory format the speed-ups ask for, and set cuDNN's
    autotuning accordingly (a process-wide switch: every model trained here sets it)."""
    model.to(device)
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    return model


def autocast(device: torch.device, speed: Speedups):
    if speed.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=speed.amp_dtype)


def affine(x: torch.Tensor, degrees: torch.Tensor, fill: float = 0.0, *,
           scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
           mode: str = "nearest") -> torch.Tensor:
    """Rotate each image of x (B, C, H, W) counter-clockwise by its own angle in degrees about
    the image centre, optionally zoom it by its own `scale` factor (B,) and move it by `shift`
    (B, 2: x right, y down, in fractions of the image side), in one grid_sample: the geometry of
    torchvision.transforms.functional.rotate / affine. `fill` (the scale of x) is used for
    pixels that come from outside the image."""
    rad = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # output pixel -> input pixel, in grid_sample's normalized coordinates (y points down)
    inverse = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    if scale is not None:
        inverse = inverse / scale.to(x.dtype)[:, None, None]
    offset = torch.zeros_like(inverse[:, :, :1])
    if shift is not None:  # a side is 2 normalized units; input = inverse @ (output - 2 * shift)
        offset = -inverse @ (2 * shift.to(x.dtype)[:, :, None])
    grid = F.affine_grid(torch.cat([inverse, offset], 2), list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def augment(x: torch.Tensor, r: Recipe, gen: torch.Generator) -> torch.Tensor:
    """The recipe's random rotation, zoom and shift, each image its own, uniform in
    [-rotation, rotation] degrees, [1 - scale, 1 + scale] and [-translate, translate] sides."""
    if not r.augments:
        return x
    n, device = len(x), x.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=gen) * 2 - 1

    angles = uniform(n) * r.rotation if r.rotation else torch.zeros(n, device=device)
    scale = 1 + uniform(n) * r.scale if r.scale else None
    shift = uniform(n, 2) * r.translate if r.translate else None
    return affine(x, angles, r.fill / 255, scale=scale, shift=shift)


def as_input(images_u8: torch.Tensor, speed: Speedups | None = None) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1], the models' input."""
    x = images_u8.unsqueeze(1).float().div_(255)
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
    device = images.device
    loss_sum = torch.zeros((), device=device)
    preds = []
    for start in range(0, len(labels), EVAL_BATCH):
        x, y = as_input(images[start:start + EVAL_BATCH], speed), labels[start:start + EVAL_BATCH]
        out = model(x)
        loss_sum += F.nll_loss(out, y, reduction="sum")
        preds.append(out.argmax(1))
    pred = torch.cat(preds)
    acc = (pred == labels).float().mean() * 100
    return (loss_sum / len(labels)).item(), acc.item(), pred


def step_factor(epoch: int, step: int, gamma: float, start: int = 1) -> float:
    """StepLR's lr multiplier in `epoch` (1-based) when decays are counted from epoch `start`."""
    return gamma ** (max(0, epoch - start) // step)


def make_optimizer(model: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    # one-cycle has no lr or momentum of its own (None): OneCycleLR overwrites both on creation,
    # so the optimizer starts with the values it sets
    onecycle = r.scheduler == "onecycle"
    lr = r.max_lr / ONECYCLE_DIV if onecycle else r.lr
    if r.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=r.weight_decay)
    momentum = ONECYCLE_MOMENTUM if onecycle else r.momentum
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=r.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, r: Recipe, steps_per_epoch: int):
    """Returns (scheduler or None, steps per batch?)."""
    if r.scheduler == "step":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: step_factor(e + 1, r.step, r.gamma, r.step_start)), False
    if r.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=r.factor, patience=r.patience), False
    if r.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=r.max_lr, total_steps=r.epochs * steps_per_epoch,
            div_factor=ONECYCLE_DIV, max_momentum=ONECYCLE_MOMENTUM), True
    return None, False


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 28, 28) on the device
    labels: torch.Tensor  # int64 (N,) on the device


def make_splits(data: dict, r: Recipe, device: torch.device) -> dict[str, Split]:
    """train (first train_subset images), val (the last val_size, only when plateau watches it)
    and test, moved to the device once."""
    x, y = data["train_images"], data["train_labels"]
    splits = {}
    if r.scheduler == "plateau" and r.plateau_on == "val":
        if r.val_size >= len(y):
            raise UserError(f"val_size = {r.val_size}: must be below the {len(y)} training images")
        splits["val"] = Split(x[-r.val_size:], y[-r.val_size:])
        x, y = x[:-r.val_size], y[:-r.val_size]
    if r.train_subset:
        x, y = x[:r.train_subset], y[:r.train_subset]
    splits["train"] = Split(x, y)
    splits["test"] = Split(data["test_images"], data["test_labels"])
    return {k: Split(s.images.to(device), s.labels.to(device)) for k, s in splits.items()}


def batches(n: int, batch_size: int, gen: torch.Generator, device: torch.device,
            desc: str) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, device=device, generator=gen)
    steps = math.ceil(n / batch_size)
    # tqdm only counts iterations: it never reads a device tensor, so it forces no sync
    for i in tqdm(range(steps), desc=desc, leave=False, disable=None, mininterval=0.5):
        yield perm[i * batch_size:(i + 1) * batch_size]


def train_epoch(model: nn.Module, step_fn: Callable, train: Split, r: Recipe,
                gen: torch.Generator, speed: Speedups, desc: str) -> tuple[float, float]:
    """One pass over the training split; returns mean loss and accuracy (%) of the pass."""
    model.train()
    device = train.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for idx in batches(len(train.labels), r.batch_size, gen, device, desc):
        x, y = augment(as_input(train.images[idx], speed), r, gen), train.labels[idx]
        loss, out = step_fn(x, y)
        loss_sum += loss.detach() * len(idx)
        correct += (out.detach().argmax(1) == y).sum()
    n = len(train.labels)
    return (loss_sum / n).item(), correct.item() * 100 / n  # exact; MPS has no float64


def make_step(model: nn.Module, opt: torch.optim.Optimizer, sched, per_batch: bool,
              device: torch.device, speed: Speedups) -> Callable:
    fwd = torch.compile(model, mode=speed.compile_mode) if speed.compile_mode else model

    def step(x: torch.Tensor, y: torch.Tensor):
        with autocast(device, speed):
            out = fwd(x)
        loss = F.nll_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if per_batch:
            sched.step()
        return loss, out

    return step


def fit(model: nn.Module, r: Recipe, data: dict, device: torch.device,
        log: Callable[[str], None] = print) -> list[dict]:
    """Train `model` by recipe `r`; returns one row of metrics per epoch."""
    torch.manual_seed(r.seed)  # weight init happened before; dropout draws from this
    gen = torch.Generator(device=device).manual_seed(r.seed)  # shuffling and angles
    speed = pick_speedups(device, r)
    place(model, device, speed)
    splits = make_splits(data, r, device)
    train = splits["train"]
    held_out = f", {len(splits['val'].labels):,} held out for validation" if "val" in splits else ""
    log(f"{len(train.labels):,} training images{held_out}")
    opt = make_optimizer(model, r)
    sched, per_batch = make_scheduler(opt, r, math.ceil(len(train.labels) / r.batch_size))
    step = make_step(model, opt, sched, per_batch, device, speed)
    history = []
    for epoch in range(1, r.epochs + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        train_loss, train_acc = train_epoch(model, step, train, r, gen, speed,
                                            f"epoch {epoch}/{r.epochs}")
        if not math.isfinite(train_loss):
            raise Diverged(f"training diverged in epoch {epoch} (loss {train_loss}) at lr {lr:g}; "
                           "try a smaller lr")
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc}
        for name in ("val", "test") if "val" in splits else ("test",):
            loss, acc, _ = evaluate(model, splits[name].images, splits[name].labels, speed)
            row |= {f"{name}_loss": loss, f"{name}_acc": acc}
        row["seconds"] = time.perf_counter() - t0
        if sched is not None and not per_batch:
            if r.scheduler == "plateau":
                sched.step(row["val_loss" if r.plateau_on == "val" else "test_loss"])
            else:
                sched.step()
        history.append(row)
        log(format_row(row, r.epochs))
    return history


def format_row(row: dict, epochs: int) -> str:
    width = len(str(epochs))
    val = f"  val loss {row['val_loss']:.4f}" if "val_loss" in row else ""
    return (f"epoch {row['epoch']:>{width}}/{epochs}  lr {row['lr']:.2e}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%{val}  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:6.2f}%  {row['seconds']:5.1f}s")
