"""The portable arithmetic (mnist_iter/cpu_math.py): the same bits on every x86-64 CPU with AVX2.
CI lands on an Intel Xeon (AMX) or an AMD EPYC (AVX-512), so every landing checks the claim on
whichever it gets; docs/evidence.md lists the CPUs seen."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from mnist_iter import cpu_math

# benchmarks/portable.py's hashes, the same on: AMD EPYC (Zen 5, AVX-512), and under
# qemu-x86_64 -cpu EPYC-Rome-v2 and -cpu Haswell-noTSX-IBRS (AVX2 only), torch 2.15.0
EXPECTED = {
    "writeup002_it3": {
        "weights": "a8f9e1cd564085edb11048e8d8650b3e8cdd814b1ca657a23909c53770472355",
        "eval": "178b70525831aec47b05ecf2f470a83377682ded266890d09e537b17aadb2feb"},
    "ours_separable": {
        "weights": "d3cd9e2bdee7e3e2858fbd33089ce2716aa27190e5048fc5e255bf5e5f8f7ebe",
        "eval": "02efea3c3f0ffe8d66fbff31500f20261a983c73630346d5632048e71b362d48"},
}


def has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


@pytest.mark.skipif(not cpu_math.is_x86(), reason="the portable arithmetic pins x86 instruction "
                    "sets; this CPU is not x86, so its runs say they are not portable")
@pytest.mark.skipif(not has_avx2(), reason="the portable arithmetic needs AVX2")
def test_a_tiny_training_has_the_committed_bits_on_this_cpu(mnist_dir):
    env = {k: v for k, v in os.environ.items() if k not in cpu_math.PINS}  # it pins itself
    out = subprocess.run([sys.executable, "-m", "benchmarks.portable", "--mnist", str(mnist_dir)],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    assert (got["aten_isa"], got["onednn_isa"]) == ("AVX2", "AVX2")
    hashes = {name: {k: net[k] for k in ("weights", "eval")} for name, net in got["nets"].items()}
    assert hashes == EXPECTED, f"other bits on {got['cpu']} (torch {got['torch']}): {hashes}"


def test_portable_pins_x86_and_native_unpins(monkeypatch):
    env = {"ATEN_CPU_CAPABILITY": "avx512", "OTHER": "1"}
    monkeypatch.setattr(cpu_math, "is_x86", lambda: True)
    cpu_math.apply("portable", env)
    assert env == {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                   "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OTHER": "1"}
    assert cpu_math.matches("portable", env) and not cpu_math.matches("native", env)
    cpu_math.apply("native", env)
    assert env == {"OTHER": "1"} and cpu_math.matches("native", env)
    monkeypatch.setattr(cpu_math, "is_x86", lambda: False)  # nothing to pin off x86
    assert cpu_math.wanted("portable") == {name: None for name in cpu_math.PINS}


def test_a_command_whose_recipe_asks_for_other_math_starts_again_with_it():
    """torch reads the instruction sets once: `enter` restarts the command with the right
    environment, and the restarted process runs what the recipe asked for."""
    code = ("import os, torch\nfrom mnist_iter import cpu_math\nprint('start', flush=True)\n"
            "cpu_math.enter('{mode}')\nprint(os.environ.get('ATEN_CPU_CAPABILITY'), "
            "torch.backends.cpu.get_cpu_capability())")
    env = {k: v for k, v in os.environ.items() if k not in cpu_math.PINS}
    native = subprocess.run([sys.executable, "-c", code.format(mode="portable")], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True).stdout.split()
    if cpu_math.is_x86():
        assert native == ["start", "start", "avx2", "AVX2"]  # started twice, pinned the second time
    pinned = {**env, **cpu_math.PINS}
    out = subprocess.run([sys.executable, "-c", code.format(mode="native")], cwd=ROOT,
                         env=pinned, capture_output=True, text=True, check=True).stdout.split()
    assert out[:3] == ["start", "start", "None"] and out[3] != ""  # unpinned the second time


def test_a_run_in_a_process_of_other_math_is_refused(recipe, monkeypatch):
    from mnist_iter.cli import UserError
    from mnist_iter.lanes import run_recipe

    import dataclasses
    import torch

    native = dataclasses.replace(recipe, cpu_math="native")
    if cpu_math.matches("native"):  # off x86 both are the same process
        pytest.skip("portable and native are one arithmetic on this CPU")
    with pytest.raises(UserError, match="cpu_math = 'native'.*start it with"):
        run_recipe(native, torch.device("cpu"))


def test_describe_names_the_arithmetic_and_whether_it_travels(monkeypatch):
    assert cpu_math.describe("bf16", "cuda", "portable") == ("bf16 on cuda (not portable)", False)
    if cpu_math.is_x86() and cpu_math.matches("portable"):
        assert cpu_math.describe("fp32", "cpu", "portable") == ("fp32, portable x86", True)
        assert cpu_math.describe("fp32_compiled", "cpu", "portable")[1] is False
    monkeypatch.setattr(cpu_math, "is_x86", lambda: False)
    monkeypatch.setattr(cpu_math.platform, "machine", lambda: "arm64")
    assert cpu_math.describe("fp32", "cpu", "portable") == ("fp32, arm64 (not portable)", False)
