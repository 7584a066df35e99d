"""The comparison of every variant: per-variant numbers over seeds, the summary table, the
iteration verdicts (each step of a write-up against the one it improves on) and the files DVC
shows (one metrics file per variant, a headline file, the curves in long form)."""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mnist_iter import files, stats
from mnist_iter.cli import DataError
from mnist_iter.data import SPLITS
from mnist_iter.models import count_params, model_for
from mnist_iter.recipe import Variant

CURVE_COLUMNS = ("train_acc", "test_acc", "test_loss")


@dataclass
class Result:
    variant: Variant
    runs: pd.DataFrame  # every seed's rows: seed, epoch, lr, train/test loss and accuracy, ...
    predictions: pd.DataFrame  # the first seed's checkpoint on the test images: actual, predicted
    summary: dict
    machine: str  # where its seeds trained: CPU or GPU name, arithmetic; or "fp32, portable x86"

    @property
    def group(self) -> str:
        """The write-up a variant belongs to ('002'), or 'ours'."""
        return self.variant.writeup.split()[0] if self.variant.writeup else "ours"


BOUNDS = {"test_acc": (0, 100), "train_acc": (0, 100), "val_acc": (0, 100), "test_loss": (0, None),
          "train_loss": (0, None), "val_loss": (0, None), "epoch": (1, None), "seed": (0, None)}


def impossible(runs: pd.DataFrame) -> None:
    """ValueError naming the first number of a runs.csv that cannot be true: an accuracy outside
    [0, 100], a negative or non-finite loss, an epoch < 1, a seed that is not a whole number."""
    for column, (low, high) in BOUNDS.items():
        if column not in runs:
            continue
        values = pd.to_numeric(runs[column], errors="coerce")
        whole = column in ("epoch", "seed")
        bad = ~(values.between(low, high if high is not None else float("inf"))) | \
            (values.mod(1).ne(0) if whole else False)
        if bad.any():
            row = int(bad.idxmax())
            limits = f"[{low}, {high}]" if high is not None else f">= {low}"
            value = runs[column].iloc[row]
            value = value.item() if hasattr(value, "item") else value  # numpy -> Python
            raise ValueError(f"{column} = {value!r} in row {row + 2} cannot be "
                             f"true (must be {'a whole number ' if whole else ''}{limits})")


def read_result(variant: Variant) -> Result:
    """A variant's committed per-seed files; a missing or damaged one is one line naming it and
    the stage that writes it again (train@ its runs, evaluate@ its test predictions)."""
    train, evaluation = files.train_dir(variant.name), files.eval_dir(variant.name)
    owner = {train / "runs.csv": "train", train / "metrics.json": "train",
             evaluation / "metrics.json": "evaluate", files.confusion_file(variant.name): "evaluate"}
    current = None

    def read(path: Path, kind: str):
        nonlocal current
        current = path
        return pd.read_csv(path) if kind == "csv" else json.loads(path.read_text())

    try:
        runs = read(train / "runs.csv", "csv")
        if not {"seed", "epoch", "test_acc", "test_loss"} <= set(runs.columns) or runs.empty:
            raise ValueError("lacks columns epoch, seed, test_acc, test_loss")
        impossible(runs)
        trained = read(train / "metrics.json", "json")
        if not (isinstance(trained, dict) and isinstance(trained.get("device_name"), str)
                and isinstance(trained.get("arithmetic"), str)):
            raise ValueError("device_name and arithmetic must be strings")
        params = read(evaluation / "metrics.json", "json")
        if not isinstance(params, dict) or type(params.get("params")) is not int:
            raise ValueError("params must be a whole number")
        built = count_params(model_for(variant.recipe))
        if params["params"] != built:
            raise ValueError(f"params = {params['params']:,}, but {variant.name}'s network has "
                             f"{built:,}: another variant's checkpoint was evaluated")
        predictions = read(files.confusion_file(variant.name), "csv")
        labels = predictions[["actual", "predicted"]]
        if len(labels) != SPLITS["test"][1] or not labels.isin(range(10)).all(axis=None):
            raise ValueError(f"not {SPLITS['test'][1]:,} rows of digits 0-9 in actual, predicted")
        current = train / "runs.csv"  # what summarize reads
        summary = stats.summarize(runs, params["params"])
        for folder, stage in ((train, "train"), (evaluation, "evaluate")):  # each set whole
            files.check_outputs(folder / files.MANIFEST, f"{stage}@{variant.name}")
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: missing; `dvc repro` trains and evaluates "
                        f"{variant.name}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError,
            pd.errors.ParserError) as e:
        first = f"no column {e}" if isinstance(e, KeyError) else \
            (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise DataError(f"{current}: damaged ({first}); `dvc repro -f {owner[current]}@"
                        f"{variant.name}` writes it again") from None
    # a portable run's numbers are the same on every x86 CPU: its arithmetic is its machine
    name = re.sub(r"\((R|TM)\)", "", trained["device_name"]).strip()  # Intel(R) Xeon(R) ...
    machine = trained["arithmetic"] if trained.get("portable") is True else \
        f"{name}, {trained['arithmetic']}"
    return Result(variant, runs, predictions, summary, machine)


def _pm(summary: dict, key: str, digits: int = 2) -> str:
    sd = summary.get(f"{key}_sd")
    return f"{summary[key]:.{digits}f}" + ("" if sd is None else f" ± {sd:.{digits}f}")


def _ci(summary: dict, key: str) -> str:
    half = summary.get(f"{key}_ci")
    return "" if half is None else f"{summary[key] - half:.2f}–{summary[key] + half:.2f}"


def summary_table(results: list[Result]) -> pd.DataFrame:
    rows = []
    recipes = {r.variant.name: r.variant.recipe for r in results}
    for result in results:
        s, v = result.summary, result.variant
        rows.append({
            "variant": v.name,
            "write-up / change": v.writeup or own_change(v, recipes),
            "params": f"{s['params']:,}",
            "epochs": s["epochs"],
            "recipe": describe(v.recipe),
            "seeds": s["seeds"],
            "final %": _pm(s, "test_acc"),
            "last-3 %": _pm(s, "last3"),
            "last-3 95% CI": _ci(s, "last3"),
            "≥ 99.4": f"{s['held3']}/{s['of3']}",
            "worst": f"{s['worst3']:.2f}",
            "reported": "" if v.reported is None else f"{v.reported:.2f}",
            "best (epoch)": f"{s['best_test_acc']:.2f} ({s['best_epoch']})",
            "target": "yes" if stats.meets_target(s) else "no",
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table without padding: as narrow as its cells (the README's lines stay under
    120 characters), and rendered the same."""
    rows = [list(table.columns), ["---"] * len(table.columns), *table.astype(str).values.tolist()]
    return "\n".join("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)


def results_table(results: list[Result]) -> pd.DataFrame:
    """The compact table (the README's, and what the report stage prints): the headline and
    whether the target is met, a variant a row; reports/summary.md has every column."""
    return pd.DataFrame([{
        "variant": r.variant.name, "params": f"{r.summary['params']:,}",
        "last-3 %": _pm(r.summary, "last3"),
        f"≥ {stats.TARGET_ACC}": f"{r.summary['held3']}/{r.summary['of3']}",
        "worst": f"{r.summary['worst3']:.2f}",
        "target": "yes" if stats.meets_target(r.summary) else "no"} for r in results])


def results_markdown(results: list[Result]) -> str:
    return f"# Results\n\n{textwrap.fill(machines(results), 100)}\n\n" \
           f"{markdown(results_table(results))}\n"


def printed(results: list[Result], verdicts: list[dict]) -> str:
    """What the report stage prints: the compact table and where the rest is."""
    resolved = sum(not row["verdict"].startswith("can't tell") for row in verdicts)
    where = (f"{resolved} of {len(verdicts)} steps resolved. Every column: reports/summary.md; "
             f"the steps: reports/verdicts.md; the frontier: reports/frontier.md; plots: `dvc "
             f"plots show`; experiments side by side: `make compare`.")
    return results_table(results).to_string(index=False) + "\n\n" + textwrap.fill(where, 100)


def frontier(results: list[Result]) -> pd.DataFrame:
    """The parameter bands between the budgets of stats.FRONTIER (the last under the target):
    in each, the variants of at most TARGET_EPOCHS epochs that hold TARGET_ACC on every seed x
    last-3 number, smallest first; where none does, the one that comes closest (most numbers
    held, then the highest worst), with how far its worst is from the bar in test images."""
    rows, lower = [], 0
    for budget in stats.FRONTIER:
        top = budget - 1 if budget == stats.TARGET_PARAMS else budget
        band = sorted((r for r in results if lower < r.summary["params"] <= top
                       and r.summary["epochs"] <= stats.TARGET_EPOCHS),
                      key=lambda r: r.summary["params"])
        label = f"{lower + 1:,}–{top:,}" if lower else f"≤ {top:,}"
        shown = [r for r in band if stats.meets_target(r.summary)]
        closest = bool(band) and not shown
        if closest:
            shown = [max(band, key=lambda r: (r.summary["held3"] / r.summary["of3"],
                                              r.summary["worst3"]))]
        for r in shown:
            s = r.summary
            short = round((stats.TARGET_ACC - s["worst3"]) * stats.TEST_IMAGES / 100)
            rows.append({"parameters": label,
                         "variant": f"{r.variant.name} (closest)" if closest else r.variant.name,
                         "params": f"{s['params']:,}", "last-3 %": _pm(s, "last3"),
                         "≥ 99.4": f"{s['held3']}/{s['of3']}",
                         "worst": f"{s['worst3']:.2f}" + (f", {short} images short"
                                                          if closest else ""),
                         "trained on": r.machine})
        if not band:
            rows.append({"parameters": label, "variant": "(none trained)"})
        lower = top
    return pd.DataFrame(rows).fillna("")


def frontier_markdown(results: list[Result]) -> str:
    """reports/frontier.md: what `frontier` shows, and its table."""
    return (f"# Frontier\n\nThe smallest networks that hold the target: for each parameter band, "
            f"the variants of at most {stats.TARGET_EPOCHS} epochs whose every seed × "
            f"last-{stats.LAST}-epoch number is ≥ {stats.TARGET_ACC}%, smallest first, or where "
            f"none is, the closest (most numbers held, then the highest worst) and how many test "
            f"images its worst is short. Where a variant trained is part of its numbers: the "
            f"same recipe moves by 0.05-0.1 between machines (docs/results.md).\n\n"
            + markdown(frontier(results)) + "\n")


def machines(results: list[Result]) -> str:
    """Where the variants trained, one sentence; says so loudly when they did not all train on
    one machine in one arithmetic (then a difference may be the machine's)."""
    by_machine: dict[str, list[str]] = {}
    for result in results:
        by_machine.setdefault(result.machine, []).append(result.variant.name)
    if len(by_machine) == 1:
        return f"Every variant trained on {next(iter(by_machine))}."
    parts = "; ".join(f"{m}: {', '.join(names)}" for m, names in by_machine.items())
    return (f"**Mixed machines** — compare across them with care (verdicts between two are "
            f"marked): {parts}.")


def verdicts(results: list[Result], pairs: list[tuple[str, str]]) -> list[dict]:
    """(after, before) pairs -> the difference of mean final accuracy with Welch's 95% CI and a
    verdict, plus McNemar's exact test on the first seeds' predictions. A pair that trained on
    different machines or arithmetic says so in its verdict."""
    by_name = {r.variant.name: r for r in results}
    rows = []
    for after, before in pairs:
        a, b = by_name[after], by_name[before]
        finals = [stats.test_curves(r.runs).iloc[-1].tolist() for r in (a, b)]
        right = [r.predictions["actual"] == r.predictions["predicted"] for r in (a, b)]
        row = {"after": after, "before": before, "seeds": [len(f) for f in finals],
               **stats.welch(*finals), "mcnemar": stats.mcnemar(*right),
               "same_machine": a.machine == b.machine}
        if not row["same_machine"]:
            row["verdict"] += " (different machines)"
        rows.append(row)
    return rows


def verdicts_markdown(rows: list[dict]) -> str:
    def interval(row):
        if row["ci_low"] is None:
            return "—"
        return f"{row['ci_low']:+.2f} to {row['ci_high']:+.2f}"

    table = pd.DataFrame([{
        "step": f"{row['before']} → {row['after']}",
        "seeds": "/".join(map(str, row["seeds"][::-1])),
        "Δ mean final (points)": f"{row['diff']:+.3f}",
        "95% CI (Welch)": interval(row),
        "verdict": row["verdict"],
        "McNemar, first seeds: gained/lost, p": (f"{row['mcnemar']['gained']}/"
                                                  f"{row['mcnemar']['lost']}, "
                                                  f"{row['mcnemar']['p']:.3f}"),
    } for row in rows])
    return markdown(table) if rows else "(no pairs)"


def read_candidate(candidate: Variant) -> tuple[pd.DataFrame, int]:
    """A screen candidate's per-seed epochs and parameter count; a missing or damaged file is
    one line naming it."""
    path, metrics = files.screen_runs(candidate.name), files.screen_metrics(candidate.name)
    try:
        runs = pd.read_csv(path)
        if not {"seed", "epoch", "val_acc"} <= set(runs.columns) or runs.empty:
            raise ValueError(f"{path}: lacks columns seed, epoch, val_acc")
        weights = int(json.loads(metrics.read_text())["weights"])
    except FileNotFoundError as e:
        raise DataError(f"{e.filename}: missing; `dvc repro screen@{candidate.name}` "
                        "in search/ runs it") from None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError,
            pd.errors.ParserError) as e:
        first = f"no key {e}" if isinstance(e, KeyError) else \
            (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise DataError(f"{candidate.name}: a screen file is damaged ({first}); "
                        f"`dvc repro -f screen@{candidate.name}` in search/ writes it again") from None
    return runs, weights


def network(recipe) -> str:
    """'ours 8-12-16-12-20-20-24, 3 separable' or the registered architecture's name."""
    if recipe.widths is None:
        return recipe.arch
    return f"{recipe.arch} {recipe.widths}" + (f", {recipe.separable} separable"
                                               if recipe.separable else "")


def own_change(variant: Variant, recipes: dict) -> str:
    """What one of the project's own variants is: the change from the variant it improves on
    ('ours_4k9: max_lr 0.1 → 0.15'), or 'own network and recipe' where that is more than three
    keys (`arch` counts as one, whatever its widths)."""
    base = recipes.get(variant.improves_on)
    if base is None:
        return "own network and recipe"
    changes = recipe_changes(variant.recipe, base).split(", ")
    if len(changes) > 3 or base.arch != variant.recipe.arch:
        return f"own network and recipe (vs {variant.improves_on})"
    return f"{variant.improves_on}: {', '.join(changes)}"


def recipe_changes(recipe, base) -> str:
    """What a candidate changes from the one it is a step from: 'separable 3 → 0, ema 0 → 0.999'."""
    mine, theirs = recipe.to_dict(), base.to_dict()
    keys = [k for k in {**theirs, **mine} if k not in ("seed", "seeds")
            and mine.get(k) != theirs.get(k)]
    return ", ".join(f"{k} {theirs.get(k, '—')} → {mine.get(k, '—')}" for k in keys) or "nothing"


def search_table(candidates: dict[str, Variant], runs: dict[str, pd.DataFrame],
                 params: dict[str, int]) -> pd.DataFrame:
    """The screen candidates on their held-out images: final and last-3 validation accuracy
    over seeds, the worst seed x last-3 number, and for a candidate that `improves_on` another
    (an ablation: one change at a time) the difference of mean last-3 accuracy with Welch's 95%
    interval of the per-seed last-3 means and a verdict."""
    rows = []
    seed_last3 = {name: stats.test_curves(runs[name], "val").tail(stats.LAST).mean()
                  for name in candidates}  # each seed's last-3 mean: the rows and the deltas
    for name, candidate in candidates.items():
        curves = stats.test_curves(runs[name], "val")
        final, last3 = curves.iloc[-1], seed_last3[name]
        summary = {"test_acc": float(final.mean()), "test_acc_sd": stats.sd(final),
                   "last3": float(last3.mean()), "last3_sd": stats.sd(last3)}
        row = {"candidate": name, "network": network(candidate.recipe),
               "params": f"{params[name]:,}", "seeds": curves.shape[1],
               "val final %": _pm(summary, "test_acc"), "val last-3 %": _pm(summary, "last3"),
               "worst": f"{curves.tail(stats.LAST).to_numpy().min():.2f}",
               "step": "", "Δ last-3 (95% CI)": "", "verdict": ""}
        base = candidate.improves_on
        if base is not None:
            test = stats.welch(last3.tolist(), seed_last3[base].tolist())
            interval = ("" if test["ci_low"] is None
                        else f" ({test['ci_low']:+.2f} to {test['ci_high']:+.2f})")
            row |= {"step": f"from {base}: "
                            f"{recipe_changes(candidate.recipe, candidates[base].recipe)}",
                    "Δ last-3 (95% CI)": f"{test['diff']:+.2f}{interval}",
                    "verdict": test["verdict"]}
        rows.append(row)
    return pd.DataFrame(rows)


def dvc_metrics(summary: dict) -> dict:
    """The per-variant metrics file: few, short keys, so `dvc metrics show` is one row a
    variant that fits 120 columns. Accuracies in percent."""
    keep = ("test_acc", "test_acc_sd", "last3", "last3_sd", "worst3", "held3", "params", "seeds")
    return {k: (round(summary[k], 3) if isinstance(summary[k], float) else summary[k])
            for k in keep if summary.get(k) is not None}


def curves(results: list[Result]) -> pd.DataFrame:
    """Mean over seeds per epoch, long form (variant, write-up, epoch, ...): one file draws
    every variant on one chart in `dvc plots`."""
    frames = []
    for result in results:
        mean = result.runs.groupby("epoch")[list(CURVE_COLUMNS)].mean().reset_index()
        frames.append(mean.assign(variant=result.variant.name, writeup=result.group))
    return pd.concat(frames)[["variant", "writeup", "epoch", *CURVE_COLUMNS]]


def describe(recipe) -> str:
    """The recipe in a few words: optimizer and lr, schedule, batch, dropout, augmentation."""
    optimizer = "SGD" if recipe.optimizer == "sgd" else "Adam"
    parts = [optimizer if recipe.lr is None else f"{optimizer} {recipe.lr:g}"]  # one-cycle: no lr
    if recipe.scheduler == "none":
        parts.append("constant lr")
    elif recipe.scheduler == "step":
        start = f" from ep {recipe.step_start}" if recipe.step_start > 1 else ""
        parts.append(f"step ×{recipe.gamma:g} every {recipe.step} ep{start}")
    elif recipe.scheduler == "plateau":
        parts.append(f"plateau on {recipe.plateau_on} loss (×{recipe.factor:g}, "
                     f"patience {recipe.patience})")
    else:
        parts.append(f"one-cycle to {recipe.max_lr:g}")
    parts.append(f"batch {recipe.batch_size}")
    if recipe.weight_decay:
        parts.append(f"wd {recipe.weight_decay:g}")
    if recipe.label_smoothing:
        parts.append(f"label smoothing {recipe.label_smoothing:g}")
    if recipe.dropout:
        parts.append(f"dropout {recipe.dropout:g}")
    if recipe.augments:  # fill applies to whatever the moves bring in from outside the image
        moves = [f"rotation ±{recipe.rotation:g}°" if recipe.rotation else "",
                 f"zoom ±{recipe.scale:.0%}" if recipe.scale else "",
                 f"shift ±{recipe.translate:.0%}" if recipe.translate else ""]
        fill = f" fill {recipe.fill:g}" if recipe.fill else ""
        parts.append(" + ".join(m for m in moves if m) + fill)
    return ", ".join(parts)
