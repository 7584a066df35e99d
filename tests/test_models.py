"""The architecture registry and checkpoint loading."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from stages.errors import UserError
from stages.models import ARCHITECTURES, build_model, count_params, load_model, save_checkpoint

# Parameter counts as ../shared/seeds/VARIANTS.md gives them.
DOCUMENTED_PARAMS = {
    "seed004": 12_514,
    "seed000": 18_010,
    "seed001": 9_736,
    "seed002_it1": 8_088,
    "seed002_it3": 7_560,
    "seed003_skeleton": 257_354,
    "seed003_bn": 19_942,
    "seed003_gap": 7_216,
}


# This project's own networks: the budget is fewer than 8,000 parameters.
OWN_PARAMS = {"ours_narrow": 6_414, "ours_wide": 7_776}


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
    model = build_model("seed002_it3", 0.05, mean=0.2, std=0.4).eval()
    save_checkpoint(tmp_path / "m.pt", model, {"arch": "seed002_it3", "dropout": 0.05})
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
        pickle.dump({"format": 1, "recipe": {"arch": "seed004"}, "state_dict": evil}, f)
    with pytest.raises(UserError, match="not a checkpoint this project can load safely"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [
    {"weights": torch.zeros(3)},
    {"format": 1, "recipe": {"arch": "seed004"}, "state_dict": {"0.mean": torch.zeros(())}},
])
def test_foreign_checkpoint_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "other.pt")
    with pytest.raises(UserError):
        load_model(tmp_path / "other.pt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(UserError, match="no such checkpoint"):
        load_model(tmp_path / "absent.pt")
