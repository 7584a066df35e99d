"""Where and how fast training runs: the device, and the speed-ups that suit it (memory format,
cuDNN autotuning, torch.compile, bf16 autocast). Only `compile` and `amp` change the arithmetic."""
from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnist_iter.cli import UserError


_claimed: list = []  # the GPU lock files this process holds until it ends


def claim_gpu(count: int, lock_dir: Path | None = None) -> int:
    """The first of `count` GPUs that no other process of this project holds: a lock file per
    GPU, held until this process ends, so N `dvc queue` workers on an N-GPU machine take one GPU
    each (DVC has no per-worker device setting). When every GPU is held, they are shared."""
    import fcntl

    lock_dir = lock_dir or Path(tempfile.gettempdir())
    for index in range(count):
        handle = open(lock_dir / f"mnist_iter-gpu{index}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _claimed.append(handle)
        return index
    return os.getpid() % count


def pick_device(name: str = "auto") -> torch.device:
    """auto -> CUDA, then MPS, then CPU; an explicit device that is missing is an error. 'cuda'
    (no index) on a machine with several GPUs takes one that no other training holds."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        return torch.device("cuda", claim_gpu(count) if count > 1 else 0)
    if name == "auto":
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
    """'NVIDIA H100 80GB HBM3', 'Intel(R) Xeon(R) Processor @ 2.10GHz', 'AMD EPYC', ..."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 / AMX), so autocast pays off."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def pick_speedups(device: torch.device, recipe) -> Speedups:
    """CUDA: channels_last; every device: the recipe's compile mode; `amp` means bf16 autocast
    on CUDA and, under `cpu_math: native`, on CPUs with native bf16, and is ignored elsewhere
    (the portable arithmetic is fp32). CPUs keep NCHW: BatchNorm's
    channels-last CPU kernel is slow on 8-12 channels (docs/evidence.md, "Speed"). No device
    autotunes: cuDNN's benchmark mode times algorithms and keeps the fastest, so two runs of one
    seed could pick different ones and differ in their last digits."""
    cuda = device.type == "cuda"
    amp_ok = cuda or (device.type == "cpu" and recipe.cpu_math == "native" and cpu_has_bf16())
    return Speedups(
        channels_last=cuda,
        cudnn_benchmark=False,
        compile_mode=recipe.compile if recipe.compile != "none" else None,
        amp_dtype=torch.bfloat16 if recipe.amp and amp_ok else None,
    )


def place(model: nn.Module, device: torch.device, speed: Speedups) -> nn.Module:
    """Move the model to the device in the memory format the speed-ups ask for, and set cuDNN
    (process-wide switches: every model trained here sets them): autotuning as the speed-ups
    say, deterministic algorithms only, and no TF32, so that "fp32" on a GPU is fp32 (PyTorch
    lets cuDNN convolve fp32 in TF32 by default)."""
    model.to(device)
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.allow_tf32 = False
    return model


def autocast(device: torch.device, speed: Speedups, cache: bool = True):
    """bf16 autocast where the speed-ups ask for it. `cache=False` for a step captured as a
    CUDA graph: autocast's cache of cast weights must not outlive the capture."""
    if speed.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=speed.amp_dtype, cache_enabled=cache)
