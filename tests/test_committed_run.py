"""The committed run travels with a clone: in a fresh clone of HEAD, once the set-up that
`make repro` does has run (download, prepare, configure), no train, evaluate or report stage is
out of date, so `make repro` trains nothing. A change to the code a stage runs (the engine's
arithmetic, a model, a stage) fails here until its re-run is committed; a refactor that keeps
the arithmetic lands after checking the checkpoints bit-identical and `dvc commit`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
# Variants whose committed outputs are known not to match the code yet, each with why; the test
# fails when any other stage is stale, and when one of these is current again (then drop it).
KNOWN_STALE: dict[str, str] = {}


def stale_stages(clone: Path, env: dict, pipeline: str = "dvc.yaml") -> set[str]:
    """The stages of one pipeline file that are out of date, by name (DVC prefixes a stage of
    another folder's dvc.yaml with that file: search/dvc.yaml:table)."""
    out = subprocess.run(["dvc", "status", "--json", pipeline], cwd=clone, env=env,
                         capture_output=True, text=True, check=True).stdout
    return {stage.rpartition(":")[2] for stage in json.loads(out or "{}")}


@pytest.fixture(scope="module")
def clone(tmp_path_factory, mnist_dir) -> tuple[Path, dict]:
    """A fresh clone of HEAD after `make repro`'s own set-up (download, prepare, configure)."""
    clone = tmp_path_factory.mktemp("committed") / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MNIST_MIRROR": str(mnist_dir), "DVC_NO_ANALYTICS": "1"}
    setup = subprocess.run(["dvc", "repro", "download", "prepare", "configure"], cwd=clone,
                           env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    return clone, env


def test_a_fresh_clone_trains_nothing(clone):
    clone, env = clone
    variants = yaml.safe_load((clone / "params.yaml").read_text())["variants"]
    for name in variants:
        assert (clone / "configs" / f"{name}.json").exists()
    stale = stale_stages(clone, env)
    expected = {f"{stage}@{name}" for name in KNOWN_STALE for stage in ("train", "evaluate")}
    if KNOWN_STALE:
        expected.add("report")  # it reads every variant's outputs
    unexpected = sorted(stale - expected)
    assert not unexpected, (f"out of date in a fresh clone: {unexpected}; commit their re-runs "
                            "(or `dvc commit` after checking the outputs are bit-identical)")
    current_again = sorted(n for n in KNOWN_STALE if f"train@{n}" not in stale)
    assert not current_again, f"{current_again}: current again; remove from KNOWN_STALE"
    assert stale <= expected
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True,
                           text=True, check=True).stdout
    assert not dirty, f"the set-up changed tracked files:\n{dirty}"


def test_the_search_comes_current_too(clone):
    """search/: its configs and results are in Git, so nothing is stale in a clone except a
    candidate registered before its run (no results yet), and then the table that lists it."""
    clone, env = clone
    stale = stale_stages(clone, env, "search/dvc.yaml")
    candidates = yaml.safe_load((clone / "search" / "params.yaml").read_text())["screen"]
    unrun = {c for c in candidates if not (clone / "search" / "results" / f"{c}.json").exists()}
    allowed = {f"screen@{c}" for c in unrun} | ({"table"} if unrun else set())
    assert not stale - allowed, (f"out of date in a fresh clone: {sorted(stale - allowed)}; "
                                 "commit their re-runs in search/ (or `dvc commit` there)")


@pytest.mark.parametrize("key, value, retrains", [
    ("variants.w2_it3.lr", 0.05, {"w2_it3"}),
    ("gamma", 0.1, {"w2_it3"}),                          # the one step-schedule variant
    ("rotation", 5.0, {"w4_base", "w0_const", "w1_neck",  # the seven without a rotation
                       "w3_skel", "w3_bn", "w3_drop", "w3_gap"}),  # of their own
])
def test_an_experiment_retrains_only_what_it_changes(clone, key, value, retrains):
    """The README's `dvc exp run -S key=value` examples: from the committed run, exactly the
    variants whose resolved recipe the change touches have a train stage out of date."""
    clone, env = clone
    params = yaml.safe_load((clone / "params.yaml").read_text())
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        subprocess.run(["dvc", "repro", "-q", "configure"], cwd=clone, env=env, check=True)
        trains = {s.partition("@")[2] for s in stale_stages(clone, env) if s.startswith("train@")}
        assert trains == retrains
    finally:
        subprocess.run(["git", "checkout", "-q", "--", "params.yaml", "dvc.lock"], cwd=clone,
                       check=True)
        subprocess.run(["dvc", "checkout", "-q", "configs"], cwd=clone, env=env, check=True)


def test_the_readme_python_snippet_runs_as_written(clone):
    """Every ```python block of the README, in a fresh clone after `make repro`'s set-up."""
    import re

    clone, env = clone
    blocks = re.findall(r"```python\n(.*?)```", (clone / "README.md").read_text(), re.S)
    assert blocks
    for code in blocks:
        out = subprocess.run([sys.executable, "-c", code], cwd=clone, env=env,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
