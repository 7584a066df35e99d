"""The report's arithmetic over seeds and its one-line recipe descriptions."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from stages.config import load_params
from stages.errors import UserError
from stages.report import describe, meets_target, summarize, summary_table, update_readme
from conftest import ROOT


def runs_from(curves: dict[int, list[float]]) -> pd.DataFrame:
    rows = [{"seed": seed, "epoch": e + 1, "test_acc": acc, "test_loss": 0.02 + seed / 100}
            for seed, accs in curves.items() for e, acc in enumerate(accs)]
    return pd.DataFrame(rows)


def test_one_seed_has_no_spread():
    m = summarize(runs_from({1: [98.0, 99.5, 99.3, 99.4, 99.45]}), {"params": 7000})
    assert m == {"seeds": 1, "test_acc": 99.45, "test_acc_last3": 99.383,
                 "test_acc_min_last3": 99.3, "best_test_acc": 99.5, "best_epoch": 2,
                 "test_loss": 0.03, "params": 7000, "epochs": 5}
    assert not meets_target(m)  # 99.3 in epoch 3 of the last three


def test_several_seeds_mean_std_and_worst_epoch():
    m = summarize(runs_from({1: [99.0, 99.4, 99.5, 99.6],
                             2: [99.2, 99.5, 99.4, 99.4],
                             3: [99.1, 99.6, 99.6, 99.5]}), {"params": 6000})
    assert m["seeds"] == 3
    assert m["test_acc"] == 99.5 and m["test_acc_std"] == 0.1
    # per-seed last-3 means 99.5, 99.433.., 99.566..: mean 99.5, sample std 0.0667
    assert m["test_acc_last3"] == 99.5 and m["test_acc_last3_std"] == pytest.approx(0.067)
    assert m["test_acc_min_last3"] == 99.4
    # the best epoch is that of the mean curve (99.5 in epochs 2, 3 and 4: the first)
    assert (m["best_test_acc"], m["best_epoch"]) == (99.5, 2)
    assert m["test_loss"] == pytest.approx(0.04)
    assert meets_target(m)
    assert not meets_target(m | {"params": 8000}) and not meets_target(m | {"epochs": 16})


def test_table_shows_spread_recipe_and_gap_to_write_up():
    params = load_params(ROOT / "params.yaml")
    name = "s003_3_rotation"
    m = summarize(runs_from({1: [99.0, 99.4, 99.5], 2: [99.2, 99.5, 99.4]}), {"params": 7216})
    row = summary_table(params.variants, {name: m}).iloc[0]
    assert row["final %"] == "99.45 ± 0.07"
    assert row["seeds"] == 2
    assert row["best − reported"] == f"{99.45 - 99.45:+.2f}"
    assert "plateau on test loss" in row["recipe"] and "fill 1" in row["recipe"]


def test_recipe_descriptions_name_the_quirks():
    v = load_params(ROOT / "params.yaml").variants
    assert describe(v["s000_const_lr"].recipe) == "SGD 0.01, constant lr, batch 64, dropout 0.15"
    assert describe(v["s002_it2_8k"].recipe) == (
        "SGD 0.04, step ×0.09 every 2 ep from ep 8, batch 128, dropout 0.05, rotation ±7°")
    assert describe(v["s002_it1_8k"].recipe).startswith("SGD 0.19, step ×0.5 every 7 ep, ")
    ours = dataclasses.replace(v["s002_it3_7k"].recipe, scale=0.1, translate=0.05, fill=1.0)
    assert describe(ours).endswith(", rotation ±7° + zoom ±10% + shift ±5% fill 1")
    cycle = dataclasses.replace(v["s002_it3_7k"].recipe, scheduler="onecycle", max_lr=0.1,
                                lr=None, momentum=None, step=None, gamma=None, step_start=None)
    assert describe(cycle).startswith("SGD, one-cycle to 0.1, batch 128, ")  # no unused lr


def test_update_readme_replaces_only_the_table(tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("# Summary\n\nSome words.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- summary:start -->\n| old |\n<!-- summary:end -->\nafter\n")
    update_readme(readme, summary)
    assert readme.read_text() == ("intro\n<!-- summary:start -->\n| a | b |\n|---|---|\n"
                                  "| 1 | 2 |\n<!-- summary:end -->\nafter\n")


@pytest.mark.parametrize("text", ["no markers\n", "<!-- summary:end -->\n<!-- summary:start -->\n",
                                  "<!-- summary:start -->\n" * 2 + "<!-- summary:end -->\n"])
def test_update_readme_refuses_bad_markers_and_leaves_the_file(tmp_path, text):
    summary = tmp_path / "summary.md"
    summary.write_text("| a |\n|---|\n")
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(UserError, match="summary:"):
        update_readme(readme, summary)
    assert readme.read_text() == text
