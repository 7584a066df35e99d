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
