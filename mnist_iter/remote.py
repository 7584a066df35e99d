"""Share runs through the default DVC remote: pull before `dvc repro`, push after it.

    python -m mnist_iter.remote pull   # `make repro` runs this first
    python -m mnist_iter.remote push   # `make push`

Both are plain `dvc pull` / `dvc push` with the run cache. Without a default remote, pull does
nothing (the pipeline runs locally, as it always did) and push says how to add one. A remote that
cannot be reached is one line: pull warns and lets the pipeline run locally, push fails.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from mnist_iter.cli import UserError, command

ADD_ONE = "add one with `dvc remote add -d NAME URL` (README: Sharing runs)"


def default_remote() -> tuple[str, str] | None:
    """(name, url) of the default remote from DVC's merged config (repo, local, user), or None."""
    from dvc.repo import Repo

    with Repo() as repo:
        name = repo.config["core"].get("remote")
        if not name:
            return None
        remote = repo.config["remote"].get(name)
        if remote is None:
            raise UserError(f"the default DVC remote {name!r} is not defined; "
                            f"`dvc remote list` shows the defined ones, or {ADD_ONE}")
        return name, remote["url"]


def missing_outputs() -> tuple[list[str], int]:
    """The cached outputs that the root dvc.lock records but the workspace lacks, and how many
    it records (the search's, search/dvc.lock, are not what `make repro` builds)."""
    from dvc.repo import Repo

    with Repo() as repo:
        root = os.path.join(repo.root_dir, "dvc.yaml")
        recorded = [out for stage in repo.index.stages for out in stage.outs
                    if out.use_cache and out.hash_info and stage.dvcfile.path == root]
        return [str(out) for out in recorded if not out.exists], len(recorded)


def _dvc(*args: str) -> tuple[int, str]:
    """Run a dvc command with its progress on the terminal; returns (exit code, its first
    error line, or '' when it printed none)."""
    result = subprocess.run(["dvc", *args], stdout=sys.stdout, stderr=subprocess.PIPE,
                            text=True)
    errors = [line.removeprefix("ERROR: ").strip() for line in result.stderr.splitlines()
              if line.startswith("ERROR")]
    return result.returncode, errors[0] if errors else result.stderr.strip()[-300:]


def pull() -> None:
    remote = default_remote()
    if remote is None:
        return
    name, url = remote
    code, error = _dvc("pull", "--run-cache", "--allow-missing")
    if code != 0:
        print(f"warning: could not pull from the DVC remote {name!r} ({url}): {error}; "
              "running the pipeline locally", file=sys.stderr)
        return
    missing, recorded = missing_outputs()
    if missing:  # DVC says "Everything is up to date" both when a remote lacks them and when
        # it cannot be reached
        print(f"warning: the DVC remote {name!r} ({url}) gave {recorded - len(missing)} of the "
              f"{recorded} outputs dvc.lock records (missing: {', '.join(missing[:3])}"
              f"{', ...' if len(missing) > 3 else ''}): not pushed yet, or the remote cannot be "
              "reached; the pipeline builds them locally", file=sys.stderr)


def push() -> None:
    remote = default_remote()
    if remote is None:
        raise UserError(f"no default DVC remote to push to; {ADD_ONE}")
    name, url = remote
    code, error = _dvc("push", "--run-cache")
    if code != 0:
        raise UserError(f"could not push to the DVC remote {name!r} ({url}): {error}")


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pull", "push"])
    {"pull": pull, "push": push}[parser.parse_args().action]()


if __name__ == "__main__":
    main()
