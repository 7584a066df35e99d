"""dvc.yaml names no variant, stages are thin and import only the library, and every stage
depends on the library modules it runs: the root pipeline's and the search's (search/dvc.yaml)."""
from __future__ import annotations

import ast
import subprocess

import yaml

from conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
SEARCH = yaml.safe_load((ROOT / "search/dvc.yaml").read_text())
STAGES = sorted(p for folder in ("stages", "search") for p in (ROOT / folder).glob("*.py")
                if p.stem != "__init__")


def test_no_variant_is_named_in_dvc_yaml():
    text = (ROOT / "dvc.yaml").read_text()
    for name in yaml.safe_load((ROOT / "params.yaml").read_text())["variants"]:
        assert name not in text


def test_top_level_metrics_and_plots_only():
    assert DVC["metrics"] == ["reports/metrics", "reports/headline.json"]
    assert SEARCH["metrics"] == ["results/cand.json"]  # relative to search/dvc.yaml
    for stage in [*DVC["stages"].values(), *SEARCH["stages"].values()]:
        body = stage.get("do", stage)
        assert "metrics" not in body and "plots" not in body


def imports(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "mnist_iter":
                found |= {f"mnist_iter.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_imports_run_one_way_and_stages_stay_thin():
    for path in (ROOT / "mnist_iter").glob("*.py"):
        assert not any(m.startswith("stages") for m in imports(path)), path
    for path in STAGES:
        assert not any(m.startswith(("stages", "search")) for m in imports(path)), path
        assert len(path.read_text().splitlines()) <= 65, f"{path}: a stage is a thin command"


def library_closure(module: str) -> set[str]:
    """The mnist_iter modules a module imports, directly or through others."""
    seen, todo = set(), [module]
    while todo:
        path = ROOT / (todo.pop().replace(".", "/") + ".py")
        for imported in imports(path):
            if imported.startswith("mnist_iter.") and imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


PLUMBING = {"mnist_iter.cli", "mnist_iter.files"}  # words and file moves, not numbers
# covered by another dep: train/evaluate/report read their recipe from configs/ or params, and
# data/mnist.pt is a dep; download reads data.mirrors only (a params dep)
COVERED = {"train": {"mnist_iter.recipe", "mnist_iter.data"},
           "evaluate": {"mnist_iter.recipe", "mnist_iter.data"},
           "screen": {"mnist_iter.recipe", "mnist_iter.data"},
           "report": {"mnist_iter.recipe", "mnist_iter.models", "mnist_iter.cpu_math"},
           "table": {"mnist_iter.recipe", "mnist_iter.models", "mnist_iter.cpu_math"},
           "download": {"mnist_iter.recipe", "mnist_iter.models", "mnist_iter.cpu_math"}}


def test_stages_depend_on_the_code_they_run():
    """Editing a module a stage runs re-runs that stage; nothing else does."""
    for name, stage in [*DVC["stages"].items(), *SEARCH["stages"].items()]:
        body = stage.get("do", stage)
        module = body["cmd"].split("python -m ")[1].split()[0]
        deps = {d[:-3].replace("/", ".") for d in body["deps"] if d.endswith(".py")}
        needed = library_closure(module) - PLUMBING - COVERED.get(name, set())
        missing = needed - deps
        assert module in deps and not missing, f"stage {name}: add {sorted(missing)} to its deps"


def test_the_offline_plots_template_is_committed_and_current():
    """`dvc plots show/diff` work in any checkout: .dvc/config's template is in Git, and it is
    what `python -m mnist_iter.plots_page` writes with the pinned vl-convert-python."""
    from mnist_iter.plots_page import TEMPLATE, page

    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(TEMPLATE)], cwd=ROOT,
                             capture_output=True)
    assert tracked.returncode == 0, f"{TEMPLATE} is not committed"
    assert "html_template = offline.html" in (ROOT / ".dvc/config").read_text()
    assert (ROOT / TEMPLATE).read_text() == page(), (
        f"{TEMPLATE} is stale: run `python -m mnist_iter.plots_page` and commit it")
