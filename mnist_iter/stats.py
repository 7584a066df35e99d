"""Numbers over seeds and comparisons between variants: means, spreads, 95% confidence intervals,
the target check, Welch's interval for a difference and McNemar's exact test (scipy)."""
from __future__ import annotations

import math

import pandas as pd
from scipy import stats

LAST = 3  # epochs averaged for the headline "last three" number
TARGET_ACC, TARGET_PARAMS, TARGET_EPOCHS = 99.4, 8000, 15  # the write-ups' goal
FRONTIER = (4000, 5000, 6000, TARGET_PARAMS)  # the parameter budgets under the target
TEST_IMAGES = 10_000


def test_curves(runs: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Accuracy (%) on `split` (test, or val for a selection run) with one row per epoch and
    one column per seed."""
    return runs.pivot(index="epoch", columns="seed", values=f"{split}_acc")


def ci_halfwidth(values: list[float] | pd.Series, level: float = 0.95) -> float | None:
    """Half-width of the t confidence interval of the mean; None for a single value."""
    values = list(values)
    if len(values) < 2:
        return None
    sem = stats.sem(values)
    return float(stats.t.ppf((1 + level) / 2, len(values) - 1) * sem) if sem > 0 else 0.0


def sd(values: pd.Series) -> float | None:
    return float(values.std()) if len(values) > 1 else None


def summarize(runs: pd.DataFrame, params: int) -> dict:
    """One variant over its seeds: final and last-3 accuracy (mean, sd, 95% CI half-width),
    the worst of the last-3 numbers and how many of the seed x epoch numbers hold the target,
    the best epoch of the mean curve (picked on the test set: optimistic), final loss."""
    curves = test_curves(runs)
    final, last3 = curves.iloc[-1], curves.tail(LAST).mean()
    tail = curves.tail(LAST).to_numpy().ravel()
    mean_curve = curves.mean(axis=1)
    return {
        "seeds": curves.shape[1],
        "epochs": int(curves.index[-1]),
        "params": params,
        "test_acc": float(final.mean()), "test_acc_sd": sd(final), "test_acc_ci": ci_halfwidth(final),
        "last3": float(last3.mean()), "last3_sd": sd(last3), "last3_ci": ci_halfwidth(last3),
        "worst3": float(tail.min()),
        "held3": int((tail >= TARGET_ACC - 1e-9).sum()), "of3": int(tail.size),
        "best_test_acc": float(mean_curve.max()), "best_epoch": int(mean_curve.idxmax()),
        "test_loss": float(runs.groupby("seed")["test_loss"].last().mean()),
    }


def meets_target(summary: dict) -> bool:
    """< 8,000 parameters, <= 15 epochs, and >= 99.4% in each of the last three epochs of
    every seed."""
    return (summary["params"] < TARGET_PARAMS and summary["epochs"] <= TARGET_EPOCHS
            and summary["held3"] == summary["of3"])


def welch(after: list[float], before: list[float], level: float = 0.95) -> dict:
    """Difference of means (after - before) with Welch's confidence interval and a verdict:
    better / worse where the interval excludes 0, can't tell otherwise (or with one seed)."""
    diff = sum(after) / len(after) - sum(before) / len(before)
    if min(len(after), len(before)) < 2:
        return {"diff": diff, "ci_low": None, "ci_high": None, "p": None,
                "verdict": "can't tell (one seed)"}
    if stats.tstd(after) == 0 and stats.tstd(before) == 0:
        low = high = diff
        p = 0.0 if diff else 1.0
    else:
        test = stats.ttest_ind(after, before, equal_var=False)
        interval = test.confidence_interval(level)
        low, high, p = float(interval.low), float(interval.high), float(test.pvalue)
    verdict = "better" if low > 0 else "worse" if high < 0 else "can't tell"
    return {"diff": diff, "ci_low": low, "ci_high": high, "p": p, "verdict": verdict}


def mcnemar(right_after: pd.Series, right_before: pd.Series) -> dict:
    """McNemar's exact test on paired predictions (bool per test image: right or not)."""
    gained = int((right_after & ~right_before).sum())
    lost = int((~right_after & right_before).sum())
    p = stats.binomtest(min(gained, lost), gained + lost, 0.5).pvalue if gained + lost else 1.0
    return {"gained": gained, "lost": lost, "p": float(p)}


def held_out(runs: pd.DataFrame, params: int) -> dict:
    """A selection run on its validation images: final and last-3 accuracy (mean over seeds),
    the worst of the seed x last-3 numbers, and with several seeds the sd over seeds of each
    seed's last-3 mean (`val_last3_sd`). The metrics file of a screen candidate; its size is
    `weights`, a key no other metrics file has, so `dvc exp show` names it without a path."""
    curves = test_curves(runs, "val")
    tail = curves.tail(LAST)
    summary = {"val_last3": round(float(tail.mean().mean()), 3),
               "val_worst3": round(float(tail.to_numpy().min()), 3),
               "val_acc": round(float(curves.iloc[-1].mean()), 3),
               "weights": params, "seeds": int(curves.shape[1])}
    spread = sd(tail.mean())
    if spread is not None:
        summary["val_last3_sd"] = round(spread, 3)
    return summary


def sampling_sd(acc: float, images: int = TEST_IMAGES) -> float:
    """Standard error (points) of an accuracy measured on `images` test images."""
    share = acc / 100
    return 100 * math.sqrt(max(share * (1 - share), 1e-12) / images)
