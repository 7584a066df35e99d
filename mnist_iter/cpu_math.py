"""The CPU arithmetic of a run: the recipe key `cpu_math`.

portable: ATen's, oneDNN's and MKL's instruction sets pinned to AVX2 (PINS), so that the same
  params, seed and thread count give the same bits on every x86-64 CPU with AVX2: an Intel Xeon with AMX
  and an AMD EPYC with AVX-512 compute what an AVX2-only EPYC computes (docs/evidence.md,
  "Portable arithmetic"). bf16 autocast is not native under the pins, so `amp` means fp32 there.
native: the libraries pick what the CPU has (AVX-512, AMX): faster on some CPUs, and other bits
  on another CPU model.

The libraries read their setting once, when torch loads, so this module imports no torch: a
stage package sets the default's pins before anything loads it (`preset`), and a command whose
recipe asks for the other arithmetic starts itself again with the right environment (`enter`).
"""
from __future__ import annotations

import os
import platform
import sys

MODES = ("portable", "native")
DEFAULT = "portable"
# ATen's vectorized kernels, oneDNN's convolutions, and MKL's SGEMM_BATCH (affine_grid, the
# augmentation's rotations): each library's widest instruction set, pinned to AVX2
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
RESTARTED = "MNIST_ITER_CPU_MATH_RESTARTED"  # set in a command started again: never loop


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def wanted(mode: str) -> dict[str, str | None]:
    """The environment a process of this arithmetic needs: the pins for portable on x86,
    none of them (unset) otherwise."""
    if mode == "portable" and is_x86():
        return dict(PINS)
    return {name: None for name in PINS}


def matches(mode: str, env=os.environ) -> bool:
    return all(env.get(name) == value for name, value in wanted(mode).items())


def apply(mode: str, env=os.environ) -> None:
    for name, value in wanted(mode).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value


def preset(mode: str = DEFAULT) -> None:
    """The default arithmetic's environment, set before torch loads, unless the process set it
    already (a restarted command, a lane). Called by the stage packages' __init__."""
    if "torch" not in sys.modules and RESTARTED not in os.environ:
        apply(mode)


def enter(mode: str) -> None:
    """Make this process run `mode`'s arithmetic: nothing to do when its environment already
    is the one torch loaded with; else set it and, once torch is loaded, start the command again
    (same interpreter, same arguments; the new process loads torch with the pins in place)."""
    if matches(mode):
        return
    apply(mode)
    if "torch" not in sys.modules:
        return
    if os.environ.get(RESTARTED):
        raise RuntimeError(f"cpu_math {mode}: the environment did not hold across a restart")
    os.environ[RESTARTED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def describe(speed_name: str, device_type: str, mode: str) -> tuple[str, bool]:
    """What a run's numbers were computed in, and whether another machine gets the same bits:
    ('fp32, portable x86', True), ('bf16, native AVX512', False), ('fp32 on cuda (not
    portable)', False).
    Read from what torch runs with, not from the recipe alone."""
    if device_type != "cpu":
        return f"{speed_name} on {device_type} (not portable)", False
    if not is_x86():
        return f"{speed_name}, {platform.machine()} (not portable)", False
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    pinned = matches("portable") and capability == "AVX2"
    if mode == "portable" and pinned and speed_name == "fp32":
        return "fp32, portable x86", True
    if pinned:  # compiled code is the host compiler's: not shown portable
        return f"{speed_name}, x86 AVX2 pins (not shown portable)", False
    return f"{speed_name}, native {capability}", False


def check(mode: str, device_type: str) -> None:
    """A training whose process does not run the arithmetic its recipe asks for is refused:
    the stage commands `enter` it; a library caller must set the environment before torch
    loads."""
    if device_type != "cpu" or matches(mode):
        return
    from mnist_iter.cli import UserError

    need = ", ".join(f"{k}={v}" for k, v in wanted(mode).items() if v) or \
        f"{' and '.join(PINS)} unset"
    raise UserError(f"cpu_math = {mode!r}: this process loaded torch with another instruction "
                    f"set; start it with {need} (the stages do that themselves)")
