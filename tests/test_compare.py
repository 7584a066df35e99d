"""`make compare` on a toy DVC project (one stage that writes reports/metrics/<variant>.json
from params.yaml, and a declared metrics folder that is never written): which columns it lists,
which params it names, and how wide it prints."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent
STAGE = """\
import json, os, yaml
os.makedirs("reports/metrics", exist_ok=True)
p = yaml.safe_load(open("params.yaml"))
for name, v in p["variants"].items():
    acc = 99.0 + p["gamma"] + v["lr"]
    several = {"last3_sd": 0.01, "seeds": 3} if name == "a" else {"seeds": 1}  # only a has an sd
    json.dump({"last3": acc, "test_acc": acc, **several}, open(f"reports/metrics/{name}.json", "w"))
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "COLUMNS": "200"}

    def run(*cmd, check=True):
        return subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True,
                              check=check)

    (path / "params.yaml").write_text("gamma: 0.1\nvariants:\n  a: {lr: 0.1}\n  b: {lr: 0.2}\n")
    (path / "stage.py").write_text(STAGE)
    (path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: python stage.py\n    deps: [stage.py]\n"
                                   "    params: [gamma, variants]\n    metrics: [reports/metrics]\n"
                                   # declared but never written, like reports/screen before a
                                   # screen run: compare must not lose the columns to it
                                   "metrics: [reports/screen]\n")
    run("git", "init", "-q")
    run("git", "commit", "-q", "--allow-empty", "-m", "root: no results yet")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    run("dvc", "exp", "run", "-q", "-n", "hot", "-S", "gamma=0.5")
    run.path = path
    return run


@pytest.mark.slow  # a DVC project and an experiment in subprocesses
def test_lists_workspace_head_and_experiments_with_changed_params(toy):
    out = toy(sys.executable, "-m", "mnist_iter.compare").stdout
    lines = out.splitlines()
    assert lines[0] == "(1) workspace: gamma=0.5"
    assert lines[1].startswith("(2) ") and lines[1].endswith(": baseline")
    assert lines[2] == "(3) hot: gamma=0.5"
    row = next(line for line in lines if line.startswith("a "))
    assert row.split() == ["a", "99.60±0.01", "+0.40", "99.20±0.01", "99.60±0.01", "+0.40"]
    row = next(line for line in lines if line.startswith("b "))
    assert row.split() == ["b", "99.70", "+0.40", "99.30", "99.70", "+0.40"]
    assert max(map(len, lines)) <= 100


@pytest.mark.slow
def test_named_revisions_and_unknown_one(toy):
    out = toy(sys.executable, "-m", "mnist_iter.compare", "hot", "HEAD", "--md").stdout
    assert out.splitlines()[:2] == ["(1) hot: baseline", "(2) HEAD: gamma=0.1"]
    assert "| b " in out and "-0.40" in out
    bad = toy(sys.executable, "-m", "mnist_iter.compare", "no-such-rev", check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: unknown revision or experiment 'no-such-rev': not a commit, branch, tag or "
        "experiment; `dvc exp show` lists the experiments, `git log` the commits"]
    blob = toy(sys.executable, "-m", "mnist_iter.compare", "HEAD:params.yaml", check=False)
    assert blob.returncode == 1 and "Traceback" not in blob.stderr
    assert blob.stderr.startswith("error: unknown revision or experiment 'HEAD:params.yaml'")


@pytest.mark.slow
def test_a_revision_column_shows_that_revision_only(toy):
    """DVC's metrics.show(revs=[rev]) also returns the workspace: a commit without results
    must say so, and a variant only in the workspace must not appear under HEAD."""
    root = toy(sys.executable, "-m", "mnist_iter.compare", "HEAD~1", check=False)
    assert root.returncode == 1
    assert root.stderr.startswith("error: HEAD~1: has no reports/metrics/<variant>.json")
    extra = toy.path / "reports/metrics/c.json"
    extra.write_text('{"last3": 98.0, "test_acc": 98.0, "seeds": 1}')
    try:
        out = toy(sys.executable, "-m", "mnist_iter.compare", "HEAD", "HEAD~1", check=False)
        assert out.returncode == 1 and "HEAD~1: has no reports/metrics" in out.stderr
        out = toy(sys.executable, "-m", "mnist_iter.compare", "HEAD").stdout
        assert not any(line.startswith("c ") for line in out.splitlines()), out
        out = toy(sys.executable, "-m", "mnist_iter.compare").stdout  # the workspace has it,
        row = next(line for line in out.splitlines() if line.startswith("c "))
        assert row.split()[1:3] == ["stale", "-"]  # written by hand: not what the stage made
    finally:
        extra.unlink()


@pytest.mark.slow
def test_a_stale_workspace_shows_no_number_and_the_command_that_fixes_it(toy):
    """params.yaml changed and not reproduced (an interrupted `dvc exp run -S ...`): the
    workspace's numbers are from other params, so its cells say stale, the legend says what
    brings them up to date, and HEAD stays the baseline."""
    params = toy.path / "params.yaml"
    before = params.read_text()
    params.write_text(before.replace("gamma: 0.5", "gamma: 0.9"))
    try:
        out = toy(sys.executable, "-m", "mnist_iter.compare").stdout
    finally:
        params.write_text(before)
    lines = out.splitlines()
    assert lines[0].startswith("(1) workspace: gamma=0.9; STALE: every variant")
    assert "`dvc repro` brings them up to date" in out
    assert next(line for line in lines if line.startswith("(2) ")).endswith(": baseline")
    row = next(line for line in lines if line.startswith("a "))
    assert row.split()[:3] == ["a", "stale", "99.20±0.01"]


@pytest.mark.slow
def test_a_damaged_lock_file_is_named_not_taken_for_missing_metrics(toy):
    lock = toy.path / "dvc.lock"
    before = lock.read_text()
    lock.write_text('schema: "2.0"\nstages: [broken\n')
    try:
        out = toy(sys.executable, "-m", "mnist_iter.compare", check=False)
    finally:
        lock.write_text(before)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert "DVC cannot read its pipeline" in line and "dvc.lock" in line
    assert "git checkout dvc.lock dvc.yaml" in line
