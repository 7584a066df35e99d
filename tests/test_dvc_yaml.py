"""dvc.yaml follows the project's conventions and covers every variant in params.yaml."""
from __future__ import annotations

import yaml

from conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
VARIANTS = list(yaml.safe_load((ROOT / "params.yaml").read_text())["variants"])


def plot(name: str) -> dict:
    return next(p[name] for p in DVC["plots"] if isinstance(p, dict) and name in p)


def test_top_level_metrics_only():
    assert DVC["metrics"] == ["reports/metrics.json"]
    for stage in DVC["stages"].values():
        body = stage.get("do", stage)
        assert "metrics" not in body and "plots" not in body


def test_every_variant_is_plotted():
    for name in ("test_accuracy", "train_accuracy", "loss"):
        assert set(plot(name)["y"]) == {f"reports/variants/{v}/train/history.csv" for v in VARIANTS}
        assert plot(name)["x"] == "epoch"
    for v in VARIANTS:
        assert plot(f"reports/variants/{v}/eval/confusion.csv")["template"] == "confusion"
        assert f"reports/variants/{v}/eval/mistakes.png" in DVC["plots"]


def test_train_depends_on_its_own_recipe_only():
    deps = DVC["stages"]["train"]["do"]["deps"]
    assert "configs/${key}.json" in deps
    assert "params" not in DVC["stages"]["train"]["do"]
