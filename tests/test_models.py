"""The architecture registry and checkpoint loading."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from mnist_iter.cli import UserError
from conftest import small_params
from mnist_iter.checkpoint import MAX_BYTES, content, load_model
from mnist_iter.models import ARCHITECTURES, build_model, count_params
from mnist_iter.recipe import parse_params

# Parameter counts as ../shared/seeds/VARIANTS.md gives them.
DOCUMENTED_PARAMS = {
    "writeup004": 12_514,
    "writeup000": 18_010,
    "writeup001": 9_736,
    "writeup002_it1": 8_088,
    "writeup002_it3": 7_560,
    "writeup003_skeleton": 257_354,
    "writeup003_bn": 19_942,
    "writeup003_gap": 7_216,
}


# This project's own networks: the budget is fewer than 8,000 parameters.
OWN_PARAMS = {"ours_wide": 7_776}


def test_every_architecture_is_documented():
    assert set(DOCUMENTED_PARAMS) | set(OWN_PARAMS) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch, params", OWN_PARAMS.items())
def test_own_architectures_stay_under_budget(arch, params):
    assert count_params(build_model(arch, 0.05)) == params < 8_000


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_shape_and_log_probabilities(arch, dropout):
    model = build_model(arch, dropout).eval()
    out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))


@pytest.mark.parametrize("arch, params", DOCUMENTED_PARAMS.items())
def test_documented_parameter_count(arch, params):
    assert count_params(build_model(arch, 0.05)) == params


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("writeup002_it3", 0.05, mean=0.2, std=0.4).eval()
    recipe = parse_params(small_params()).variant("first").recipe
    torch.save(content(model, "first", 1, recipe.to_dict()), tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert not loaded.training
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded[0].mean.item() == pytest.approx(0.2)  # normalization travels with the weights


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _RunsCode()
    evil.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": 1, "recipe": {"arch": "writeup004"}, "state_dict": evil}, f)
    with pytest.raises(UserError, match="not a checkpoint this project can load safely"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [
    {"weights": torch.zeros(3)},
    {"format": 1, "recipe": {"arch": "writeup004"}, "state_dict": {"0.mean": torch.zeros(())}},
    {"format": 2, "recipe": {"arch": "writeup004"}, "state_dict": {}},  # recipe lacks keys
])
def test_foreign_checkpoint_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "other.pt")
    with pytest.raises(UserError):
        load_model(tmp_path / "other.pt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")


def recipe_dict(**changes) -> dict:
    return parse_params(small_params()).variant("first").recipe.to_dict() | changes


@pytest.mark.parametrize("recipe, needle", [
    (recipe_dict(epochs="many"), "its recipe is not valid (recipe.epochs = 'many'"),
    (recipe_dict(dropout=2.0), "its recipe is not valid (recipe.dropout = 2.0"),
    ({k: v for k, v in recipe_dict().items() if k != "batch_size"}, "recipe.batch_size: missing"),
])
def test_checkpoint_with_a_bad_recipe_is_one_line(tmp_path, recipe, needle):
    model = build_model("writeup002_it3", 0.05)
    torch.save(content(model, "first", 1, recipe), tmp_path / "m.pt")
    with pytest.raises(UserError) as err:
        load_model(tmp_path / "m.pt")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_weights_of_another_architecture_are_one_line(tmp_path):
    other = build_model("ours_wide", 0.0)
    torch.save(content(other, "first", 1, recipe_dict()), tmp_path / "m.pt")
    with pytest.raises(UserError, match=r"weights do not fit architecture 'writeup002_it3' "
                                        r"\(\d+ missing, \d+ unexpected, \d+ of the wrong shape\)"):
        load_model(tmp_path / "m.pt")


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "folder"])
def test_damaged_checkpoint_is_one_line(tmp_path, damage):
    path = tmp_path / "m.pt"
    torch.save(content(build_model("writeup002_it3", 0.05), "first", 1, recipe_dict()), path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "random":
        path.write_bytes(os.urandom(4000))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(UserError) as err:
        load_model(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert ("seed1.pt" if damage == "folder" else "dvc repro") in str(err.value)


def test_checkpoint_that_unpacks_too_large_is_refused_before_loading(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    torch.save(content(build_model("writeup002_it3", 0.05), "first", 1, recipe_dict()), path)
    monkeypatch.setattr("mnist_iter.checkpoint.MAX_BYTES", 1000)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("inflated before the check"))
    with pytest.raises(UserError, match=r"unpacks to [\d,]+ bytes, more than the 1,000"):
        load_model(path)
    assert MAX_BYTES >= 2**20  # the largest real checkpoint (w3_skel) is ~1 MB


def test_checkpoint_with_nan_weights_is_refused(tmp_path):
    model = build_model("writeup002_it3", 0.05)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("nan"))
    torch.save(content(model, "first", 1, recipe_dict()), tmp_path / "m.pt")
    with pytest.raises(UserError, match="holds NaN or inf weights"):
        load_model(tmp_path / "m.pt")
