"""The report's arithmetic over seeds, the verdicts' statistics, the recipe descriptions and
the README copy."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from conftest import small_params
from mnist_iter import report, stats
from mnist_iter.cli import UserError
from mnist_iter.readme import update_readme
from mnist_iter.recipe import params_table, parse_params


def runs_from(curves: dict[int, list[float]]) -> pd.DataFrame:
    rows = [{"seed": seed, "epoch": e + 1, "test_acc": acc, "test_loss": 0.02 + seed / 100}
            for seed, accs in curves.items() for e, acc in enumerate(accs)]
    return pd.DataFrame(rows)


def test_one_seed_has_no_spread():
    s = stats.summarize(runs_from({1: [98.0, 99.5, 99.3, 99.4, 99.45]}), 7000)
    assert (s["seeds"], s["test_acc"], s["test_acc_sd"], s["test_acc_ci"]) == (1, 99.45, None, None)
    assert s["last3"] == pytest.approx(99.383, abs=1e-3) and s["worst3"] == 99.3
    assert (s["held3"], s["of3"]) == (2, 3) and (s["best_test_acc"], s["best_epoch"]) == (99.5, 2)
    assert not stats.meets_target(s)  # 99.3 in epoch 3 of the last three


def test_several_seeds_mean_sd_ci_and_count():
    s = stats.summarize(runs_from({1: [99.0, 99.4, 99.5, 99.6],
                                   2: [99.2, 99.5, 99.4, 99.4],
                                   3: [99.1, 99.6, 99.6, 99.5]}), 6000)
    assert s["seeds"] == 3 and s["test_acc"] == pytest.approx(99.5)
    assert s["test_acc_sd"] == pytest.approx(0.1)
    # per-seed last-3 means 99.5, 99.433.., 99.566..: mean 99.5, sd 0.0667, t(2) interval
    assert s["last3"] == pytest.approx(99.5) and s["last3_sd"] == pytest.approx(0.0667, abs=1e-4)
    assert s["last3_ci"] == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 0.0667 / math.sqrt(3),
                                          abs=1e-3)
    assert (s["worst3"], s["held3"], s["of3"]) == (99.4, 9, 9)
    assert stats.meets_target(s)
    assert not stats.meets_target(s | {"params": 8000}) and not stats.meets_target(s | {"epochs": 16})


def test_welch_verdicts():
    assert stats.welch([99.5, 99.6, 99.55], [99.2, 99.25, 99.3])["verdict"] == "better"
    assert stats.welch([99.2, 99.25, 99.3], [99.5, 99.6, 99.55])["verdict"] == "worse"
    tie = stats.welch([99.4, 99.5, 99.45], [99.45, 99.4, 99.5])
    assert tie["verdict"] == "can't tell" and tie["ci_low"] < 0 < tie["ci_high"]
    assert stats.welch([99.4], [99.3])["verdict"] == "can't tell (one seed)"
    after, before = [99.5, 99.6, 99.55, 99.58], [99.2, 99.25, 99.3]
    expected = scipy_stats.ttest_ind(after, before, equal_var=False).confidence_interval()
    got = stats.welch(after, before)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((expected.low, expected.high))


def test_mcnemar_counts_the_discordant_images():
    after = pd.Series([True] * 10 + [False] * 2 + [True] * 5)
    before = pd.Series([False] * 10 + [True] * 2 + [True] * 5)
    result = stats.mcnemar(after, before)
    assert (result["gained"], result["lost"]) == (10, 2)
    assert result["p"] == pytest.approx(scipy_stats.binomtest(2, 12, 0.5).pvalue)


def test_dvc_metrics_are_few_and_short():
    s = stats.summarize(runs_from({1: [99.0, 99.4, 99.5], 2: [99.2, 99.5, 99.4]}), 7216)
    m = report.dvc_metrics(s)
    assert set(m) == {"test_acc", "test_acc_sd", "last3", "last3_sd", "worst3", "held3",
                      "params", "seeds"}


def test_recipe_descriptions_name_the_quirks():
    recipe = parse_params(small_params()).variant("first").recipe
    plain = dataclasses.replace(recipe, scheduler="none", rotation=0.0, fill=None, step=None,
                                gamma=None, step_start=None, dropout=0.15, batch_size=64, lr=0.01)
    assert report.describe(plain) == "SGD 0.01, constant lr, batch 64, dropout 0.15"
    late = dataclasses.replace(recipe, gamma=0.09, step_start=8)
    assert report.describe(late) == ("SGD 0.04, step ×0.09 every 2 ep from ep 8, batch 64, "
                                     "dropout 0.05, rotation ±7°")
    moved = dataclasses.replace(recipe, scale=0.1, translate=0.05, fill=1.0, label_smoothing=0.1)
    assert report.describe(moved).endswith(", label smoothing 0.1, dropout 0.05, "
                                           "rotation ±7° + zoom ±10% + shift ±5% fill 1")
    cycle = parse_params(small_params()).variant("second").recipe
    assert report.describe(cycle).startswith("SGD, one-cycle to 0.1, batch 64, ")  # no unused lr


def with_markers(path, names):
    path.write_text("intro\n" + "".join(f"<!-- {n}:start -->\n| old |\n<!-- {n}:end -->\nmid\n"
                                        for n in names))


def test_update_readme_replaces_only_the_tables(tmp_path):
    for name in ("results", "verdicts", "frontier"):  # the summary marker takes results.md
        (tmp_path / f"{name}.md").write_text(f"# {name}\n\nwords\n\nwhere {name} trained,\n"
                                             f"in two lines\n\n| {name} |\n|---|\n| 1 |\n")
    readme, parameters = tmp_path / "README.md", tmp_path / "parameters.md"
    with_markers(readme, ("summary", "verdicts", "frontier"))
    with_markers(parameters, ("params",))
    update_readme(readme, tmp_path, parameters)
    text = readme.read_text()
    # the results bring the paragraph above their table (where the variants trained)
    assert text.startswith("intro\n<!-- summary:start -->\nwhere results trained,\nin two lines\n"
                           "\n| results |\n|---|\n| 1 |\n<!-- summary:end -->\nmid\n")
    assert "where verdicts trained" not in text
    assert "| verdicts |" in text and "| frontier |" in text and "| old |" not in text
    assert params_table() in parameters.read_text() and params_table() not in text


@pytest.mark.parametrize("text", ["no markers\n", "<!-- summary:end -->\n<!-- summary:start -->\n",
                                  "<!-- summary:start -->\n" * 2 + "<!-- summary:end -->\n"])
def test_update_readme_refuses_bad_markers_and_leaves_the_file(tmp_path, text):
    for name in ("results", "verdicts", "frontier"):
        (tmp_path / f"{name}.md").write_text("| a |\n|---|\n")
    readme, parameters = tmp_path / "README.md", tmp_path / "parameters.md"
    readme.write_text(text)
    with_markers(parameters, ("params",))
    before = parameters.read_text()
    with pytest.raises(UserError, match="summary:"):
        update_readme(readme, tmp_path, parameters)
    assert readme.read_text() == text and parameters.read_text() == before  # neither is written


def test_params_chart_names_every_point_without_overlaps(tmp_path, monkeypatch):
    """Variants on the same spot, or whose markers touch, share a label; near ones are moved
    apart, not drawn over."""
    import types

    import matplotlib.pyplot as plt

    from mnist_iter import charts
    from mnist_iter.files import outputs

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    spots = {"a": (7560, [99.5, 99.5, 99.5]), "b": (7776, [99.5, 99.49, 99.5]),
             "c": (8088, [99.4, 99.41, 99.42]), "d": (8088, [99.4, 99.41, 99.42]),
             "e": (257354, [99.0, 99.1, 99.05]),
             "g": (4916, [99.5, 99.5, 99.5]), "f": (4896, [99.5, 99.51, 99.5])}  # 3 px apart
    results = [types.SimpleNamespace(variant=types.SimpleNamespace(name=name),
                                     summary=stats.summarize(runs_from({1: accs}), params))
               for name, (params, accs) in spots.items()]
    with outputs() as out:
        charts.plot_params(results, out, tmp_path / "p.png")
    renderer = figures[0].canvas.get_renderer()
    top, zoom = figures[0].axes  # every variant on a log axis; the frontier on a linear one
    named = {}
    for ax in (top, zoom):
        assert sorted(t.get_text() for t in ax.texts if t.get_gid() == "budget") == [
            "4k ", "5k ", "6k ", "8k "]
        labels = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts
                  if t.get_gid() is None and t.get_text()}
        frame = ax.get_window_extent(renderer)
        assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1)
                   for b in labels.values()), labels  # no name over an axis
        boxes = list(labels.values())
        assert not any(p.overlaps(q) for i, p in enumerate(boxes) for q in boxes[i + 1:]), labels
        named[ax] = set(labels)
    assert named[top] == {"e"} and named[zoom] == {"a", "b", "c, d", "f, g"}  # each name once


def _result(name: str, machine: str, finals: list[float], improves_on: str | None = None):
    variant = parse_params(small_params()).variant("first")
    variant = dataclasses.replace(variant, name=name, improves_on=improves_on)
    runs = runs_from({seed: [99.0, acc] for seed, acc in enumerate(finals, 1)})
    predictions = pd.DataFrame({"actual": [1, 2, 3], "predicted": [1, 2, 0]})
    return report.Result(variant, runs, predictions, stats.summarize(runs, 7000), machine)


def test_results_from_several_machines_are_said_and_their_verdicts_marked():
    epyc, xeon = "AMD EPYC, fp32", "Intel Xeon, bf16"
    a, b, c = (_result("a", epyc, [99.2, 99.25, 99.3]),
               _result("b", epyc, [99.5, 99.6, 99.55], "a"),
               _result("c", xeon, [99.5, 99.6, 99.55], "b"))
    assert report.machines([a, b]) == "Every variant trained on AMD EPYC, fp32."
    mixed = report.machines([a, b, c])
    assert mixed.startswith("**Mixed machines**") and "AMD EPYC, fp32: a, b" in mixed
    assert "Intel Xeon, bf16: c" in mixed
    same, across = report.verdicts([a, b, c], [("b", "a"), ("c", "b")])
    assert (same["verdict"], same["same_machine"]) == ("better", True)
    assert across["verdict"] == "can't tell (different machines)" and not across["same_machine"]


def test_own_variants_say_what_they_change():
    from mnist_iter.recipe import parse_params
    from mnist_iter.report import own_change

    raw = small_params(variants={
        "base": {"arch": "ours", "writeup": "002", "scheduler": "onecycle"},
        "peak": {"arch": "ours", "improves_on": "base", "scheduler": "onecycle", "max_lr": 0.15,
                 "batch_size": 32},
        "other": {"arch": "writeup004", "improves_on": "base"},
        "alone": {"arch": "ours", "lr": 0.1}})
    variants = parse_params(raw).variants
    recipes = {n: v.recipe for n, v in variants.items()}
    assert own_change(variants["peak"], recipes) == "base: batch_size 64 → 32, max_lr 0.1 → 0.15"
    assert own_change(variants["other"], recipes) == "own network and recipe (vs base)"
    assert own_change(variants["alone"], recipes) == "own network and recipe"


def _sized(name: str, params: int, curves: dict[int, list[float]], epochs_ok: bool = True):
    runs = runs_from({seed: accs if epochs_ok else accs * 6 for seed, accs in curves.items()})
    variant = dataclasses.replace(parse_params(small_params()).variant("first"), name=name)
    return report.Result(variant, runs, pd.DataFrame(), stats.summarize(runs, params), "CPU, fp32")


def test_the_frontier_lists_who_holds_every_number_or_the_closest_and_how_far():
    results = [
        _sized("tiny", 3500, {1: [99.5, 99.3, 99.2], 2: [99.5, 99.5, 99.5]}),  # 4 of 6, worst 99.2
        _sized("small", 3900, {1: [99.5, 99.4, 99.31], 2: [99.38, 99.5, 99.5]}),  # 4 of 6, 99.31
        _sized("mid_b", 4900, {1: [99.5, 99.41, 99.5]}),
        _sized("mid_a", 4100, {1: [99.4, 99.45, 99.5]}),
        _sized("mid_no", 4500, {1: [99.39, 99.6, 99.6]}),
        _sized("long", 5500, {1: [99.5, 99.5, 99.5]}, epochs_ok=False),  # 18 epochs: not counted
        _sized("big", 9000, {1: [99.6, 99.6, 99.6]}),  # over the target: no band
    ]
    table = report.frontier(results)
    rows = table.to_dict("records")
    assert [(r["parameters"], r["variant"]) for r in rows] == [
        ("≤ 4,000", "small (closest)"),  # same share held as tiny, higher worst
        ("4,001–5,000", "mid_a"), ("4,001–5,000", "mid_b"),  # every holder, smallest first
        ("5,001–6,000", "(none trained)"), ("6,001–7,999", "(none trained)")]
    assert rows[0]["≥ 99.4"] == "4/6" and rows[0]["worst"] == "99.31, 9 images short"
    assert rows[1]["worst"] == "99.40" and rows[1]["trained on"] == "CPU, fp32"
    assert rows[3]["params"] == ""


def test_the_readme_is_a_short_guide():
    """At most 200 lines, none over 120 characters outside code blocks, the how-to before the
    results (issue 52)."""
    from conftest import ROOT

    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    fenced, wide = False, []
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and len(line) > 120:
            wide.append(number)
    assert not wide, f"README lines over 120 characters: {wide}"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings.index("## Results") > headings.index("## When things go wrong")
