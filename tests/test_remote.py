"""Sharing runs through real parts standing in for the shared ones: a bare Git repository and a
local-folder DVC remote in a temporary folder, and three clones (A, B, C) of a tiny project
(the tests' own two variants, 512 images, 1 epoch). Nothing leaves the machine."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_queue, small_params

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


class Clone:
    def __init__(self, path: Path, env: dict):
        self.path, self.env = path, env

    def run(self, *cmd: str, check: bool = True, **env) -> subprocess.CompletedProcess:
        result = subprocess.run(cmd, cwd=self.path, env={**self.env, **env}, capture_output=True,
                                text=True, timeout=900)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout}\n"
                        f"{result.stderr}")
        return result

    def make(self, target: str, **env) -> subprocess.CompletedProcess:
        # READY= skips the venv step: the clone runs on this test's interpreter (on PATH)
        return self.run("make", target, "READY=", **env)

    def run_queued(self, gamma: float, name: str) -> None:
        self.run("dvc", "exp", "run", "--queue", "-n", name, "-S", f"gamma={gamma}")
        status = run_queue(self, jobs=1)
        assert "Success" in status, status


@pytest.fixture(scope="module")
def shared(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("shared")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MNIST_MIRROR": str(mnist_dir), "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")],
                   check=True)
    seed = Clone(root / "seed", env)
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file() and not rel.startswith(("reports/", "models/", "dvc.lock",
                                                          "search/")):  # the root pipeline only
            (seed.path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, seed.path / rel)
    (seed.path / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    seed.run("git", "init", "-q", "-b", "main")
    seed.run("dvc", "remote", "add", "-d", "shared", str(root / "storage"))
    seed.run("git", "add", "-A")
    seed.run("git", "commit", "-qm", "tiny project with a shared remote")
    seed.run("git", "push", "-q", str(root / "origin.git"), "main")

    def clone(name: str, **extra) -> Clone:
        subprocess.run(["git", "clone", "-q", str(root / "origin.git"), str(root / name)],
                       check=True, env=env)
        return Clone(root / name, {**env, **extra})

    return clone


def test_push_pull_and_experiments_from_several_clones(shared):
    # A: runs the tiny project, pushes its outputs and run cache, and its commit
    a = shared("a")
    out = a.make("repro")
    assert "Running stage 'train@first'" in out.stdout
    assert out.stderr == ""  # no dvc.lock yet: nothing to pull, nothing to warn about
    a.make("push")
    a.run("git", "add", "-A")
    a.run("git", "commit", "-qm", "tiny run")
    a.run("git", "push", "-q", "origin", "main")

    # B: the pushed commit restores models and reports; nothing is downloaded or trained
    b = shared("b", MNIST_MIRROR="/nonexistent")
    out = b.make("repro")
    assert "Running stage" not in out.stdout and "warning" not in out.stderr, out
    assert "Data and pipelines are up to date." in out.stdout
    for name in ("first", "second"):
        assert (b.path / f"models/{name}/seed1.pt").read_bytes() == (
            a.path / f"models/{name}/seed1.pt").read_bytes()

    # A and C each run one queued experiment and push it; B pulls both
    c = shared("c")
    assert "Running stage" not in c.make("repro").stdout
    a.run_queued(0.5, "from-a")
    c.run_queued(0.3, "from-c")
    for clone, name in ((a, "from-a"), (c, "from-c")):
        clone.run("dvc", "exp", "push", "origin", name)
    b.run("dvc", "exp", "pull", "origin")
    shown = json.loads(b.run("dvc", "exp", "show", "--json").stdout)
    text = json.dumps(shown)
    assert '"from-a"' in text and '"from-c"' in text
    compare = b.run(sys.executable, "-m", "mnist_iter.compare").stdout
    assert "from-a: gamma=0.5" in compare and "from-c: gamma=0.3" in compare, compare
    b.run("dvc", "exp", "apply", "from-c")  # its outputs come from the remote
    assert json.loads((b.path / "configs/first.json").read_text())["gamma"] == 0.3
    assert (b.path / "models/first/seed1.pt").exists()

    # D: the same commit without a remote, then with one nobody answers
    d = shared("d")
    d.run("dvc", "remote", "remove", "shared")
    push = d.run("make", "push", "READY=", check=False)
    assert push.returncode != 0
    assert "error: no default DVC remote to push to; add one with `dvc remote add -d" in (
        push.stderr)
    d.run("dvc", "remote", "add", "-d", "web", "http://127.0.0.1:9/store")  # nothing listens
    pull = d.run(sys.executable, "-m", "mnist_iter.remote", "pull")
    assert pull.stderr.strip().startswith("warning: the DVC remote 'web' "
                                          "(http://127.0.0.1:9/store) gave 0 of the")
    assert len(pull.stderr.strip().splitlines()) == 1
