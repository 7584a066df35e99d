"""Does bf16 autocast pay off on this CPU? The engine's training step (forward, backward, update)
of each named network, batch 128, in fp32 and under bf16 autocast, on random images, one thread
by default.

    python -m benchmarks.amp_step [--archs writeup003_skeleton ours_wide] [--threads 1]
                                  [--steps 20] [--out benchmarks/results/amp_step.json]

`amp: true` turns autocast on wherever oneDNN reports native bf16 (mnist_iter.device.cpu_has_bf16),
which includes AVX512-BF16 CPUs without AMX; this measures whether that is a speed-up there.
The result is the median of --steps timed steps after three warm-up steps, per network and
arithmetic, with the CPU model and its bf16-related flags. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch

from mnist_iter.cli import command
from mnist_iter.device import PLAIN, cpu_has_bf16, device_name
from mnist_iter.engine import make_step
from mnist_iter.files import write_json
from mnist_iter.models import ARCH_NAMES, build_model


def cpu_flags(wanted=("avx512_bf16", "amx_bf16", "amx_tile", "avx2")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [flag for flag in wanted if flag in flags]


def step_seconds(arch: str, amp: bool, steps: int, batch: int = 128) -> float:
    """Median seconds of the engine's own training step (mnist_iter.engine.make_step)."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    speed = dataclasses.replace(PLAIN, amp_dtype=torch.bfloat16 if amp else None)
    model = build_model(arch, 0.0)
    step = make_step(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), None,
                     device, speed)
    images, labels = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    times = []
    for index in range(steps + 3):
        start = time.perf_counter()
        step(images, labels)
        if index >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["writeup003_skeleton", "writeup003_bn",
                                                        "writeup002_it3", "ours_wide"],
                        choices=[name for name in ARCH_NAMES if name != "ours"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/amp_step.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for arch in args.archs:
        fp32, bf16 = (step_seconds(arch, amp, args.steps) for amp in (False, True))
        rows[arch] = {"fp32_ms": round(fp32 * 1000, 1), "bf16_ms": round(bf16 * 1000, 1),
                      "bf16_speedup": round(fp32 / bf16, 2)}
        print(f"{arch:22s} fp32 {fp32 * 1000:7.1f} ms  bf16 {bf16 * 1000:7.1f} ms  "
              f"bf16 speed-up {fp32 / bf16:.2f}x")
    write_json(args.out, {
        "cpu": device_name(torch.device("cpu")), "flags": cpu_flags(),
        "cpu_has_bf16": cpu_has_bf16(), "torch": torch.__version__, "machine": platform.machine(),
        "threads": args.threads, "batch": 128, "steps": args.steps, "networks": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
