"""bench's pieces that need no training: loop names, the choice of loops to compare, bad options."""
from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch

from benchmarks import bench
from mnist_iter import device
from conftest import small_params
from mnist_iter.recipe import parse_params
from mnist_iter.cli import UserError


def test_speedup_names():
    assert device.PLAIN.name == "fp32"
    assert device.Speedups(True, True, "default", torch.bfloat16).name == "bf16_compiled"
    assert device.Speedups(True, True, None, torch.bfloat16).name == "bf16"


def test_accuracy_loops_must_exist_for_the_settings():
    recipe = parse_params(small_params()).variant("first").recipe
    recipe = dataclasses.replace(recipe, compile="default", amp=False)
    with pytest.raises(UserError, match=r"unknown loop 'engine_bf16'; with these settings: "
                                        r"reference, engine_fp32, engine_compiled"):
        bench.compare_accuracy(recipe, torch.device("cpu"), {}, 1, 0, only=["engine_bf16"])


@pytest.mark.parametrize("option, value, message", [
    ("--repeats", "0", "--repeats = 0: must be at least 1"),
    ("--steps", "-5", "--steps = -5: must be 0 or more (0 skips it)"),
    ("--accuracy-seeds", "-1", "--accuracy-seeds = -1: must be 0 or more (0 skips it)"),
])
def test_bad_counts_are_one_line_errors(monkeypatch, capsys, option, value, message):
    monkeypatch.setattr(sys, "argv", ["bench", option, value, "--out", "/nonexistent/bench.json"])
    with pytest.raises(SystemExit) as exit_:
        bench.main()  # fails before it loads any data or writes anything
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_arithmetic_times_each_arithmetic_in_a_process_of_its_own(monkeypatch, tmp_path, capsys):
    from benchmarks import arithmetic

    out = tmp_path / "arithmetic.json"
    monkeypatch.setattr(sys, "argv", ["arithmetic", "--archs", "writeup003_gap", "ours",
                                      "--steps", "1", "--rounds", "1", "--out", str(out)])
    arithmetic.main()
    result = json.loads(out.read_text())
    for arch in ("writeup003_gap", "ours"):
        row = result["networks"][arch]
        assert {"portable_fp32", "native_fp32"} <= set(row["ms"]) and row["ms"]["native_fp32"] > 0
        assert row["vs_portable"]["portable_fp32"] == 1.0
    if arithmetic.cpu_math.is_x86():
        assert result["isa"]["portable_fp32"] == "AVX2"  # the child ran pinned
    assert result["threads"] == 1 and "portable_fp32" in capsys.readouterr().out


@pytest.mark.slow
def test_gpu_benchmark_runs_every_part_and_renders_its_table(tmp_path):
    """benchmarks.gpu as the device machine runs it (plain python, no DVC, no prepared data),
    shrunk to a CPU-sized run; then its table into an evidence file's gpu markers."""
    import os
    import shutil
    import subprocess

    from benchmarks import gpu
    from conftest import ROOT, SHARED_MNIST

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_MIRROR": str(SHARED_MNIST)}
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--device", "cpu", "--train-subset", "128",
           "--epochs", "1", "--variants", "w2_it3", "ours_3k9", "--out", str(out)]
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=900)
    result = json.loads(out.read_text())
    parts = result["parts"]
    assert set(parts) == {"smoke", "eager_1", "graphs_1", "batched_eager", "graphs_5", "whole_run"}
    assert parts["smoke"]["identical"] is True  # on the CPU both ways are eager
    assert [parts[p]["seeds"] for p in ("eager_1", "graphs_1", "graphs_5")] == [1, 1, 5]
    assert parts["graphs_5"]["seed_steps"] == 5 * 1 * 1  # 128 images in one step of 128
    whole = parts["whole_run"]
    assert list(whole["variants"]) == ["w2_it3", "ours_3k9"] and whole["left_out"] == []
    assert whole["seed_steps"] == 5 * 1 + 5 * 2  # ours_3k9: batch 64
    assert result["device_name"] and result["cuda"] is None  # a CPU run names no CUDA
    evidence = tmp_path / "evidence.md"
    evidence.write_text(f"before\n{gpu.MARKERS[0]}\nold\n{gpu.MARKERS[1]}\nafter\n")
    gpu.render(out, evidence)
    text = evidence.read_text()
    assert "old" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| w2_it3, 5 seeds as one network, CUDA graphs | 5 |" in text
    assert "| the whole committed run, 2 variants | all |" in text
    late = subprocess.run(cmd[:-2] + ["--parts", "whole_run", "--seconds", "0", "--out",
                                      str(tmp_path / "late.json")],
                          cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    assert "2 variants left out at the deadline" in late.stdout.decode()


def test_gpu_benchmark_keeps_each_part_it_measured(monkeypatch, tmp_path, mnist_data):
    """A part that fails is recorded with its error, the others keep their numbers, and the
    JSON is on disk after every part (a time-out loses nothing measured)."""
    from benchmarks import gpu

    monkeypatch.setattr(gpu, "prepare_data", lambda: mnist_data)
    calls = []

    def timed(recipes, data, device, how):
        if how == "batched_eager":
            raise RuntimeError("CUDA error: an illegal memory access\nmore")
        return {"seeds": len(recipes), "arithmetic": "fp32", "seconds": 1.0,
                "seed_steps_per_s": 1.0, "seed_steps": 1}

    monkeypatch.setattr(gpu, "timed", timed)
    args = gpu.argparse.Namespace(device="cpu", train_subset=0, epochs=0, seconds=60,
                                  parts=["eager_1", "batched_eager", "graphs_5"], variants=None)
    result = gpu.run(args, save=lambda r: calls.append(json.loads(json.dumps(r))["parts"]))
    assert [list(c) for c in calls] == [["eager_1"], ["eager_1", "batched_eager"],
                                        ["eager_1", "batched_eager", "graphs_5"]]
    assert result["parts"]["batched_eager"] == {
        "error": "RuntimeError: CUDA error: an illegal memory access"}
    assert "failed: RuntimeError" in gpu.table(result) and "| 5 |" in gpu.table(result)
