"""What each arithmetic costs on this CPU: the engine's training step (forward, backward, update)
of each named network, batch 128, on random images, one thread by default, in

  portable_fp32  cpu_math: portable (ATen and oneDNN pinned to AVX2; the default),
  native_fp32    cpu_math: native, amp: false (the libraries' own pick: AVX-512, AMX),
  native_bf16    cpu_math: native, amp: true (bf16 autocast; only where oneDNN has native bf16).

    python -m benchmarks.arithmetic [--archs writeup002_it3 ours_wide] [--threads 1]
                                    [--steps 20] [--rounds 3] [--out benchmarks/results/arithmetic.json]

The instruction sets are fixed when torch loads, so each arithmetic times its steps in a process
of its own; the processes take turns for --rounds rounds (portable, native fp32, native bf16,
portable, ...) so that a change in the machine's load falls on all of them. The result is, per
network and arithmetic, the median over rounds of each round's median of --steps timed steps
after three warm-up steps, and the ratios to portable_fp32. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from mnist_iter import cpu_math
from mnist_iter.cli import UserError, command
from mnist_iter.files import write_json

ARITHMETICS = {"portable_fp32": ("portable", False), "native_fp32": ("native", False),
               "native_bf16": ("native", True)}
DEFAULT_ARCHS = ["writeup003_bn", "writeup002_it3", "ours_wide", "ours"]
OURS_SEPARABLE = {"widths": "10-12-18-12-32-34-36", "separable": 5}  # ours_4k9d's network


def cpu_flags(wanted=("avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx2")) -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [flag for flag in wanted if flag in flags]


def step_seconds(arch: str, amp: bool, steps: int, batch: int = 128) -> float:
    """Median seconds of the engine's own training step (mnist_iter.engine.make_step), in this
    process's arithmetic."""
    import dataclasses

    import torch

    from mnist_iter.device import PLAIN
    from mnist_iter.engine import make_step
    from mnist_iter.models import build_model

    torch.manual_seed(0)
    device = torch.device("cpu")
    speed = dataclasses.replace(PLAIN, amp_dtype=torch.bfloat16 if amp else None)
    model = build_model(arch, 0.0, **(OURS_SEPARABLE if arch == "ours" else {}))
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


def child(arithmetic: str, archs: list[str], steps: int, threads: int) -> dict | None:
    """One round of one arithmetic, in a process of its own: {arch: seconds, "isa": ...}, or
    None for bf16 where this CPU has no native bf16."""
    mode, amp = ARITHMETICS[arithmetic]
    env = dict(os.environ)
    cpu_math.apply(mode, env)
    out = subprocess.run([sys.executable, "-m", "benchmarks.arithmetic", "--child", arithmetic,
                          "--archs", *archs, "--steps", str(steps), "--threads", str(threads)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"{arithmetic}: the timing process failed: "
                        f"{(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.splitlines()[-1])


def run_child(arithmetic: str, archs: list[str], steps: int, threads: int) -> None:
    import torch

    from mnist_iter.device import cpu_has_bf16

    torch.set_num_threads(threads)
    amp = ARITHMETICS[arithmetic][1]
    if amp and not cpu_has_bf16():
        print(json.dumps(None))
        return
    times = {arch: step_seconds(arch, amp, steps) for arch in archs}
    print(json.dumps({"isa": torch.backends.cpu.get_cpu_capability(), "seconds": times}))


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=DEFAULT_ARCHS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=ARITHMETICS, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="benchmarks/results/arithmetic.json")
    args = parser.parse_args()
    if args.child:
        return run_child(args.child, args.archs, args.steps, args.threads)
    from mnist_iter.models import ARCH_NAMES

    bad = [a for a in args.archs if a not in ARCH_NAMES]
    if bad or args.steps < 1 or args.rounds < 1 or args.threads < 1:
        raise UserError(f"--archs {bad[0]!r}: one of {', '.join(ARCH_NAMES)}" if bad else
                        "--steps, --rounds and --threads: must be at least 1")
    rounds: dict[str, list] = {name: [] for name in ARITHMETICS}
    isa = {}
    for _ in range(args.rounds):
        for name in ARITHMETICS:
            result = child(name, args.archs, args.steps, args.threads)
            if result is not None:
                rounds[name].append(result["seconds"])
                isa[name] = result["isa"]
    rows = {}
    for arch in args.archs:
        ms = {name: round(statistics.median(r[arch] for r in runs) * 1000, 1)
              for name, runs in rounds.items() if runs}
        rows[arch] = {"ms": ms, "vs_portable": {n: round(v / ms["portable_fp32"], 2)
                                                for n, v in ms.items()}}
        print(f"{arch:16s} " + "  ".join(f"{n} {v:7.1f} ms ({rows[arch]['vs_portable'][n]:.2f}x)"
                                         for n, v in ms.items()))
    from mnist_iter.device import device_name

    import torch

    write_json(args.out, {
        "cpu": device_name(torch.device("cpu")), "flags": cpu_flags(), "isa": isa,
        "torch": torch.__version__, "machine": platform.machine(), "threads": args.threads,
        "batch": 128, "steps": args.steps, "rounds": args.rounds, "networks": rows})
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
