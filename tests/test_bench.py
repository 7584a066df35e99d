"""bench's pieces that need no training: loop names and the choice of loops to compare."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from stages import bench, engine
from stages.config import load_params
from stages.errors import UserError


def test_speedup_names():
    assert engine.PLAIN.name == "fp32"
    assert engine.Speedups(True, True, "default", torch.bfloat16).name == "bf16_compiled"
    assert engine.Speedups(True, True, None, torch.bfloat16).name == "bf16"


def test_accuracy_loops_must_exist_for_the_settings():
    recipe = dataclasses.replace(load_params().variant(bench.VARIANT).recipe, compile="default",
                                 amp=False)
    with pytest.raises(UserError, match=r"unknown loop 'engine_bf16'; with these settings: "
                                        r"reference, engine_fp32, engine_compiled"):
        bench.compare_accuracy(recipe, torch.device("cpu"), {}, 1, 0, only=["engine_bf16"])
