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


def test_amp_step_writes_both_arithmetics_per_network(monkeypatch, tmp_path, capsys):
    from benchmarks import amp_step

    out = tmp_path / "amp.json"
    monkeypatch.setattr(sys, "argv", ["amp_step", "--archs", "writeup003_gap", "--steps", "1",
                                      "--out", str(out)])
    amp_step.main()
    result = json.loads(out.read_text())
    row = result["networks"]["writeup003_gap"]
    assert row["fp32_ms"] > 0 and row["bf16_ms"] > 0
    assert row["bf16_speedup"] == pytest.approx(row["fp32_ms"] / row["bf16_ms"], abs=0.01)
    assert result["threads"] == 1 and isinstance(result["cpu_has_bf16"], bool)
    assert "bf16 speed-up" in capsys.readouterr().out


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
    assert set(parts) == {"eager_1", "graphs_1", "batched_eager", "graphs_5", "whole_run"}
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
