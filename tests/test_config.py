"""params.yaml validation: every bad value stops with one line naming key, value and range."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stages.config import load_params, make_recipe, parse_params
from stages.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


def with_changes(top: dict | None = None, variant: dict | None = None) -> dict:
    raw = copy.deepcopy(RAW)
    raw.update(top or {})
    if variant:
        raw["variants"][next(iter(raw["variants"]))].update(variant)
    return raw


def test_project_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.variants and params.mirrors
    for v in params.variants.values():
        assert v.recipe.epochs >= 1 and (v.recipe.lr or v.recipe.max_lr) > 0


@pytest.mark.parametrize("top, variant, needle", [
    ({"lr": 0}, None, "lr = 0"),
    ({"lr": -0.1}, None, "lr = -0.1"),
    (None, {"lr": "fast"}, "lr = 'fast'"),
    ({"dropout": 1.0}, None, "dropout = 1.0: must be a number in [0, 1)"),
    ({"rotation": -5}, None, "rotation = -5"),
    ({"epochs": 0}, None, "epochs = 0: must be an integer >= 1"),
    ({"epochs": 2.5}, None, "epochs = 2.5"),
    ({"seeds": 0}, None, "seeds = 0: must be an integer in [1, 100]"),
    ({"batch_size": 0}, None, "batch_size = 0: must be an integer >= 1"),
    ({"amp": 1}, None, "amp = 1: must be true or false"),
    ({"scheduler": "cosine"}, None, "scheduler = 'cosine': must be one of none, step"),
    (None, {"scheduler": "cosine"}, "variants."),
    ({"optimizer": "rmsprop"}, None, "optimizer = 'rmsprop'"),
    ({"device": "tpu"}, None, "device = 'tpu'"),
    (None, {"arch": "resnet50"}, "arch = 'resnet50': unknown architecture; registered: seed004"),
    ({"gama": 0.2}, None, "gama: unknown key; did you mean 'gamma'?"),
    (None, {"rotaton": 7}, "rotaton: unknown key; did you mean 'rotation'?"),
    ({"variants": {}}, None, "variants"),
    ({"data": {"mirrors": "http://x"}}, None, "data.mirrors"),
])
def test_rejected(top, variant, needle):
    with pytest.raises(ParamsError) as err:
        parse_params(with_changes(top, variant))
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_variant_overrides_and_inherits():
    raw = with_changes({"gamma": 0.33, "lr": 0.02})
    raw["variants"] = {
        "a": {"arch": "seed002_it3", "scheduler": "step"},
        "b": {"arch": "seed004", "lr": 0.5},
    }
    params = parse_params(raw)
    a, b = params.variants["a"].recipe, params.variants["b"].recipe
    assert (a.lr, a.gamma) == (0.02, 0.33)
    assert b.lr == 0.5


def test_effective_recipe_leaves_out_what_does_not_apply():
    raw = with_changes()
    raw["variants"] = {"plain": {"arch": "seed004", "scheduler": "none", "rotation": 0}}
    recipe = parse_params(raw).variants["plain"].recipe
    d = recipe.to_dict()
    assert "gamma" not in d and "step" not in d and "fill" not in d and "patience" not in d
    assert make_recipe(d) == recipe  # the configs/<v>.json round trip


def test_one_cycle_drops_the_lr_and_momentum_it_overrides():
    raw = with_changes()
    raw["variants"] = {"cycle": {"arch": "seed004", "scheduler": "onecycle", "max_lr": 0.1}}
    recipe = parse_params(raw).variants["cycle"].recipe
    assert recipe.lr is None and recipe.momentum is None and recipe.max_lr == 0.1
    raw["variants"]["cycle"] |= {"lr": 0.5, "momentum": 0.5}  # no re-training for these
    assert parse_params(raw).variants["cycle"].recipe.to_dict() == recipe.to_dict()


def test_unknown_variant_name():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ParamsError, match="unknown variant 'nope'; params.yaml defines: "):
        params.variant("nope")


def run_stage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)


def test_bad_params_exit_2_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes({"lr": -1})))
    result = run_stage(tmp_path, "stages.configure")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: lr = -1.0: must be a number > 0"
    assert not (tmp_path / "configs").exists()


def test_unknown_variant_on_command_line_exits_2(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    result = run_stage(tmp_path, "stages.train", "s002_it3_typo")
    assert result.returncode == 2
    assert "unknown variant 's002_it3_typo'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_yaml_syntax_error(tmp_path):
    (tmp_path / "params.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
