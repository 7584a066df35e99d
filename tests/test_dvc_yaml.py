"""dvc.yaml follows the project's conventions and covers every variant in params.yaml."""
from __future__ import annotations

import ast

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


# Project modules a stage may import without listing them as deps: plumbing that moves files
# and words, not numbers, and modules whose part in the stage is already covered by a dep.
PLUMBING = {"errors", "io", "paths", "runtime"}
COVERED = {
    "download": {"config"},  # reads only data.mirrors, a params dep
    "prepare": {"download"},  # file names; the files themselves are the data/MNIST/raw dep
    "train": {"config", "prepare"},  # its recipe is configs/<v>.json; load_data reads the
    "evaluate": {"config", "prepare"},  # data/mnist.pt dep (evaluate: the name check only)
}


def stage_imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "stages" / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "stages":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
            found.add(node.module.split(".")[1])
    return found


def test_stages_depend_on_the_code_they_run():
    """Editing a module a stage imports re-runs that stage (a stale evaluation or plot
    otherwise survives a change to, e.g., engine.evaluate that leaves the checkpoints alone)."""
    for name, stage in DVC["stages"].items():
        body = stage.get("do", stage)
        module = body["cmd"].split("python -m stages.")[1].split()[0]
        deps = {d[len("stages/"):-len(".py")] for d in body["deps"] if d.startswith("stages/")}
        missing = stage_imports(module) - deps - PLUMBING - COVERED.get(name, set()) - {module}
        add = ", ".join(f"stages/{m}.py" for m in sorted(missing))
        assert module in deps and not missing, f"stage {name}: add {add} to its deps"
