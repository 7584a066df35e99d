"""The frontier search's pieces: the `ours` family (widths, separable), weight averaging (ema)
and the screen candidates, which never see the test set."""
from __future__ import annotations

import copy
import dataclasses

import pandas as pd
import pytest
import torch

from conftest import small_params
from mnist_iter.cli import ParamsError
from mnist_iter.engine import fit, train_seed, without_test
from mnist_iter.models import build_model, count_params, model_for
from mnist_iter.recipe import parse_params
from mnist_iter.stats import held_out


@pytest.mark.parametrize("widths, separable, params", [
    ("10-12-14-10-12-14-16", 0, 7_776),  # ours_wide, the network of ours_7k8
    ("8-10-12-8-12-14-14", 0, 6_414),    # the narrow one
    ("8-12-16-12-20-20-24", 3, 4_918),   # search/history.md's a4918s3
    ("8-12-16-12-20-24-24", 4, 3_710),   # a3710s4
])
def test_family_parameter_counts(widths, separable, params):
    assert count_params(build_model("ours", 0.0, widths=widths, separable=separable)) == params


def test_family_with_the_named_widths_is_the_named_network():
    torch.manual_seed(0)
    family = build_model("ours", 0.05, widths="10-12-14-10-12-14-16", separable=0)
    torch.manual_seed(0)
    named = build_model("ours_wide", 0.05)
    assert family.state_dict().keys() == named.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(family.state_dict().values(),
                                                  named.state_dict().values()))


@pytest.mark.parametrize("separable", range(6))
def test_every_separable_depth_runs_and_saves_parameters(separable):
    model = build_model("ours", 0.0, widths="8-12-16-12-20-20-24", separable=separable).eval()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == separable
    if separable:
        fewer = build_model("ours", 0.0, widths="8-12-16-12-20-20-24", separable=separable - 1)
        assert count_params(model) < count_params(fewer)


@pytest.mark.parametrize("change, needle", [
    ({"widths": "8-8-8"}, "widths = '8-8-8': must be seven channel counts"),
    ({"widths": "8-8-8-8-8-8-0"}, "widths = '8-8-8-8-8-8-0'"),
    ({"widths": "8-8-8-8-8-8-100"}, "widths = '8-8-8-8-8-8-100'"),
    ({"separable": 6}, "separable = 6: must be an integer in [0, 5]"),
    ({"ema": 1.0}, "ema = 1.0: must be a number in [0, 1)"),
    ({"ema": -0.1}, "ema = -0.1"),
])
def test_family_keys_are_checked(change, needle):
    raw = small_params(**change)
    with pytest.raises(ParamsError) as err:
        parse_params(raw, search=True)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_family_keys_apply_to_the_family_only():
    raw = small_params(variants={"fam": {"arch": "ours", "widths": "8-8-8-8-8-8-8"},
                                 "named": {"arch": "writeup002_it3"}})
    params = parse_params(raw, search=True)
    assert params.variant("fam").recipe.widths == "8-8-8-8-8-8-8"
    assert "widths" not in params.variant("named").recipe.to_dict()


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.state_dict().values()]


def test_ema_keeps_the_average_and_leaves_training_alone(small_data, recipe):
    recipe = dataclasses.replace(recipe, arch="ours", widths="4-4-4-4-4-4-4", separable=0,
                                 train_subset=256, batch_size=64, epochs=2, rotation=0.0)
    cpu = torch.device("cpu")
    plain, plain_history = train_seed(recipe, small_data, cpu, log=lambda _: None)
    averaged = dataclasses.replace(recipe, ema=0.9)
    torch.manual_seed(averaged.seed)
    raw = model_for(averaged, small_data["mean"], small_data["std"])
    kept, history = fit(raw, averaged, small_data, cpu, log=lambda _: None)
    # the average only watches: the trained weights are those of the run without it
    assert all(torch.equal(a, b) for a, b in zip(_weights(raw), _weights(plain)))
    # ... and it is what is kept and measured: other weights, other per-epoch numbers
    assert kept is not raw
    assert not all(torch.equal(a, b) for a, b in zip(_weights(kept)[:3], _weights(plain)[:3]))
    assert [r["test_loss"] for r in history] != [r["test_loss"] for r in plain_history]
    # deterministic: the same seed gives the same average
    again, again_history = train_seed(averaged, small_data, cpu, log=lambda _: None)
    assert all(torch.equal(a, b) for a, b in zip(_weights(again), _weights(kept)))
    assert again_history[-1]["test_acc"] == history[-1]["test_acc"]


def test_a_selection_run_has_no_test_set(mnist_data, recipe):
    data = without_test(mnist_data)
    assert not any(k.startswith("test_") for k in data) and "train_images" in data
    recipe = dataclasses.replace(recipe, train_subset=256, val_size=500)
    _, history = train_seed(recipe, data, torch.device("cpu"), log=lambda _: None)
    assert {"val_acc", "val_loss"} <= set(history[0])
    assert not any(k.startswith("test_") for k in history[0])
    runs = pd.DataFrame([{"seed": 1, **row} for row in history])
    summary = held_out(runs, 123)
    assert summary["weights"] == 123 and summary["seeds"] == 1
    assert summary["val_worst3"] <= summary["val_last3"] and "val_last3_sd" not in summary
    two = pd.concat([runs, runs.assign(seed=2, val_acc=runs.val_acc - 1.0)])
    spread = held_out(two, 123)
    assert spread["seeds"] == 2 and spread["val_last3_sd"] == pytest.approx(0.5 ** 0.5, abs=1e-3)


def test_screen_candidates_inherit_and_are_checked():
    raw = small_params()
    raw["screen"] = {"wide": {"arch": "ours", "widths": "8-8-8-8-8-8-8", "val_size": 1000}}
    cand = parse_params(raw, search=True).candidate("wide").recipe
    assert (cand.arch, cand.val_size, cand.lr) == ("ours", 1000, raw["lr"])
    with pytest.raises(ParamsError, match="unknown screen candidate 'narrow'; .* defines: wide"):
        parse_params(raw, search=True).candidate("narrow")


@pytest.mark.parametrize("entry, needle", [
    ({"arch": "ours"}, "screen.cand.val_size = 0: a candidate is measured on held-out"),
    ({"arch": "ours", "val_size": 100, "scheduler": "plateau", "plateau_on": "test"},
     "screen.cand.plateau_on = 'test': a candidate never reads the test set"),
    ({"arch": "ours", "val_size": 100, "lr": 0}, "lr = 0.0"),
    ("ours", "screen.cand"),
])
def test_bad_screen_candidates_are_one_line(entry, needle):
    raw = copy.deepcopy(small_params())
    raw["screen"] = {"cand": entry}
    with pytest.raises(ParamsError) as err:
        parse_params(raw, search=True)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_screen_candidate_name_is_one_line():
    raw = small_params()
    raw["screen"] = {"a b": {"arch": "ours", "val_size": 100}}
    with pytest.raises(ParamsError, match="a candidate name is"):
        parse_params(raw, search=True)


def _val_runs(finals: list[float]) -> pd.DataFrame:
    return pd.DataFrame([{"seed": seed, "epoch": epoch, "val_acc": acc - (3 - epoch) * 0.1}
                         for seed, acc in enumerate(finals, 1) for epoch in (1, 2, 3)])


def test_search_table_says_what_each_ablation_changed_and_whether_it_mattered():
    from mnist_iter.report import search_table

    raw = small_params()
    raw["screen"] = {
        "best": {"arch": "ours", "widths": "8-12-16-12-20-20-24", "separable": 3,
                 "val_size": 1000, "seeds": 3},
        "no_sep": {"arch": "ours", "widths": "8-12-16-12-20-20-24", "val_size": 1000,
                   "seeds": 3, "improves_on": "best"},
        "ema": {"arch": "ours", "widths": "8-12-16-12-20-20-24", "separable": 3, "ema": 0.99,
                "val_size": 1000, "seeds": 3, "improves_on": "best"},
    }
    candidates = parse_params(raw, search=True).screen
    runs = {"best": _val_runs([99.40, 99.42, 99.38]), "no_sep": _val_runs([99.20, 99.22, 99.18]),
            "ema": _val_runs([99.41, 99.37, 99.40])}
    table = search_table(candidates, runs, {"best": 4918, "no_sep": 7000, "ema": 4918})
    rows = table.set_index("candidate")
    assert rows.loc["best", "network"] == "ours 8-12-16-12-20-20-24, 3 separable"
    assert rows.loc["best", "val final %"] == "99.40 ± 0.02" and rows.loc["best", "worst"] == "99.18"
    assert rows.loc["best", "verdict"] == "" and rows.loc["best", "params"] == "4,918"
    assert rows.loc["no_sep", "step"] == "from best: separable 3 → 0"
    assert rows.loc["no_sep", "verdict"] == "worse"
    assert rows.loc["no_sep", "Δ last-3 (95% CI)"].startswith("-0.20 (")
    assert rows.loc["ema", "step"] == "from best: ema 0.0 → 0.99"
    assert rows.loc["ema", "verdict"] == "can't tell"


def test_an_ablation_must_name_another_candidate():
    raw = small_params()
    raw["screen"] = {"a": {"arch": "ours", "val_size": 100, "improves_on": "nobody"}}
    with pytest.raises(ParamsError, match=r"screen.a.improves_on = 'nobody': must name another"):
        parse_params(raw, search=True)


def test_a_missing_or_old_screen_file_is_one_line(tmp_path, monkeypatch):
    from mnist_iter.cli import DataError
    from mnist_iter.report import read_candidate

    monkeypatch.chdir(tmp_path)
    raw = small_params(screen={"cand": {"arch": "writeup002_it3", "val_size": 256}})
    candidate = parse_params(raw, search=True).candidate("cand")
    with pytest.raises(DataError, match=r"cand.csv: missing; `dvc repro screen@cand` in search/ runs it"):
        read_candidate(candidate)
    (tmp_path / "search/runs").mkdir(parents=True)
    (tmp_path / "search/results").mkdir()
    _val_runs([99.4]).to_csv(tmp_path / "search/runs/cand.csv", index=False)
    (tmp_path / "search/results/cand.json").write_text('{"params": 4918}')  # before 'weights'
    with pytest.raises(DataError, match=r"damaged \(no key 'weights'\); `dvc repro -f screen@cand`"):
        read_candidate(candidate)
