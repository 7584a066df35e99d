"""Compare experiments: variants as rows, experiments as columns, the headline (last-3 mean,
± sd over seeds) and each column's difference from the baseline, marked `~` where it is within
the noise. Reads DVC's Python API only (exp_show, metrics_show, params_show).

    python -m mnist_iter.compare                      # workspace, HEAD, HEAD's experiments
    python -m mnist_iter.compare HEAD~1 HEAD my-exp   # named revisions or experiments
    python -m mnist_iter.compare --baseline HEAD --md # Markdown for pasting
"""
from __future__ import annotations

import argparse
import math
import os
import re
import textwrap
from dataclasses import dataclass

from mnist_iter.cli import UserError, command
from mnist_iter.stats import sampling_sd

METRIC = re.compile(r"^reports/metrics/(?P<variant>[^/]+)\.json$")
NOISE_SDS = 2  # a difference within 2 standard errors of the seeds (or the test set) is noise


ALL = "*"  # in Column.stale: every variant (the data, the recipes or the report are stale)
REPRO = "`dvc repro` brings them up to date"


@dataclass
class Column:
    name: str
    metrics: dict[str, dict]  # variant -> {last3, last3_sd, seeds, ...}
    params: dict[str, object]  # flattened params.yaml
    stale: frozenset = frozenset()  # variants whose outputs these params and code did not make
    head: bool = False  # the commit checked out (the default baseline)

    def is_stale(self, variant: str) -> bool:
        return ALL in self.stale or variant in self.stale


def workspace_stale() -> frozenset:
    """What `dvc status` finds out of date in the workspace's pipeline (not the search's):
    a train or evaluate stage marks its variant, any other stage (download, prepare, configure,
    report) every variant. The workspace's numbers are then not from its params and code."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo() as repo:
            status = repo.status()
    except DvcException as e:  # a damaged dvc.lock or dvc.yaml: say so, not "no metrics"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"workspace: `dvc status` cannot read the pipeline ({first}); "
                        "`git checkout dvc.lock dvc.yaml` brings back the committed ones") from None
    stale = set()
    for stage in status:
        if ".yaml:" in stage:
            continue  # another dvc.yaml's stage (search/dvc.yaml:screen@...)
        kind, _, variant = stage.partition("@")
        stale.add(variant if variant and kind in ("train", "evaluate") else ALL)
    return frozenset(stale)


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def head_columns() -> list[Column]:
    """workspace, HEAD and every finished experiment of HEAD, as `dvc exp show` lists them."""
    import dvc.api

    columns = []
    for row in dvc.api.exp_show():
        if row.get("State") in ("Queued", "Running", "Failed"):
            continue
        rev = None if row["rev"] == "workspace" else row["rev"]
        try:
            column = rev_column(rev, name=row.get("Experiment") or row["rev"])
        except UserError:  # a row without this layout's metrics has nothing to compare
            if row.get("typ") == "baseline" and rev is not None:
                raise  # HEAD itself: the baseline must not move to another column silently
            continue
        column.head = row.get("typ") == "baseline" and rev is not None
        columns.append(column)
    return columns


def rev_column(rev: str | None, name: str | None = None) -> Column:
    """One column from a commit, branch or experiment (None: the workspace). Metrics come per
    file from the repo's metrics.show, which dvc.api.metrics_show wraps: that wrapper drops the
    file name of a key only one file has (`last3_sd` of the one variant with several seeds)."""
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import RevError
    from scmrepo.exceptions import SCMError

    try:
        with Repo() as repo:
            # "return": a metrics file this command does not read (the search's before any
            # screen run) must not hide the per-variant files; theirs are raised below
            shown = repo.metrics.show(revs=None if rev is None else [rev], on_error="return")
        params = _flatten(dvc.api.params_show(rev=rev))
    except (SCMError, RevError, KeyError, AttributeError, TypeError):
        # AttributeError: a name Git resolves to a file, not a commit (HEAD:params.yaml)
        raise UserError(f"unknown revision or experiment {rev!r}: not a commit, branch, tag or "
                        "experiment; `dvc exp show` lists the experiments, `git log` the "
                        "commits") from None
    except (DvcException, ValueError) as e:  # a damaged dvc.lock or dvc.yaml, and the like
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"{name or rev or 'workspace'}: DVC cannot read its pipeline ({first}); "
                        "in the workspace, `git checkout dvc.lock dvc.yaml` brings back the "
                        "committed ones") from None
    metrics: dict[str, dict] = {}
    for path, file_data in _of_rev(shown, rev).get("data", {}).items():
        if match := METRIC.match(os.path.relpath(path) if os.path.isabs(path) else path):
            if isinstance(file_data.get("error"), FileNotFoundError):
                raise UserError(f"{name or rev}: its metrics are not in the DVC cache; "
                                "`dvc pull` (or `dvc exp pull`) fetches them")
            if file_data.get("error") is not None:
                raise UserError(f"{name or rev}: {path} cannot be read "
                                f"({file_data['error']}); re-run `dvc repro report`")
            metrics[match["variant"]] = _checked(file_data.get("data"), name or rev, path)
    if not metrics:
        raise UserError(f"{name or rev}: has no reports/metrics/<variant>.json (older than "
                        "this layout, or not reproduced yet)")
    return Column(name or rev or "workspace", metrics, params,
                  workspace_stale() if rev is None else frozenset())


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked(data, column: str | None, path: str) -> dict:
    """A variant's metrics as compare reads them, or one line naming the file and the key."""
    fix = "re-run `dvc repro report`"
    if not isinstance(data, dict):
        raise UserError(f"{column or 'workspace'}: {path} is not a mapping of metrics; {fix}")
    seeds = data.get("seeds", 1)
    for key, ok, must in (
            ("last3", _number(data.get("last3")) and 0 <= data["last3"] <= 100,
             "an accuracy in [0, 100]"),
            ("seeds", isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1,
             "a whole number >= 1"),
            ("last3_sd", data.get("last3_sd") is None or (_number(data["last3_sd"])
                                                          and data["last3_sd"] >= 0),
             "a number >= 0")):
        if not ok:
            raise UserError(f"{column or 'workspace'}: {path}: {key} = {data.get(key)!r} cannot "
                            f"be true (must be {must}); {fix}")
    return data


def _of_rev(shown: dict, rev: str | None) -> dict:
    """The entry of metrics.show for `rev` alone: asked for a revision it returns the
    workspace's too, under "workspace" (the workspace alone comes under "")."""
    if rev is None:
        return shown.get("workspace") or shown.get("", {})
    if rev in shown:
        return shown[rev]
    others = [data for name, data in shown.items() if name != "workspace"]
    return others[0] if len(others) == 1 else {}


def noise(base: dict, other: dict) -> float:
    """NOISE_SDS standard errors of a difference of two headline numbers: from the seed spread
    when both have several seeds, else from the sampling error on 10,000 test images."""
    if base.get("last3_sd") is not None and other.get("last3_sd") is not None:
        se = math.hypot(base["last3_sd"] / math.sqrt(base["seeds"]),
                        other["last3_sd"] / math.sqrt(other["seeds"]))
    else:
        se = math.hypot(sampling_sd(base["last3"]), sampling_sd(other["last3"]))
    return NOISE_SDS * se


def changed_params(base: Column, column: Column) -> list[str]:
    keys = sorted(set(base.params) | set(column.params))
    return [f"{key}={column.params.get(key)}" for key in keys
            if base.params.get(key) != column.params.get(key)]


def cell(value: dict | None, base: dict | None, is_base: bool, stale: bool = False) -> str:
    if stale:
        return "stale"  # never a number the column's params and code did not make
    if not value:
        return "-"
    sd = value.get("last3_sd")
    text = f"{value['last3']:.2f}" + (f"±{sd:.2f}" if sd is not None else "")
    if is_base or not base:
        return text
    diff = value["last3"] - base["last3"]
    return f"{text} {diff:+.2f}{'~' if abs(diff) < noise(base, value) else ' '}"


def table(columns: list[Column], baseline: int, markdown: bool) -> str:
    from tabulate import tabulate

    base = columns[baseline]
    variants = list(dict.fromkeys(v for c in columns for v in c.metrics))
    headers = ["variant"] + [f"({i + 1}) {c.name}"[:24] for i, c in enumerate(columns)]
    base_metrics = {} if base.stale else base.metrics  # a stale baseline compares nothing
    rows = [[v] + [cell(c.metrics.get(v), base_metrics.get(v), i == baseline, c.is_stale(v))
                   for i, c in enumerate(columns)] for v in variants]
    legend = [f"({i + 1}) {c.name}: " + ("baseline" if i == baseline else
                                           ", ".join(changed_params(base, c)) or "same params")
              + stale_note(c) for i, c in enumerate(columns)]
    text = tabulate(rows, headers, tablefmt="pipe" if markdown else "simple",
                    disable_numparse=True)
    notes = ("last-3 mean test accuracy (%) ± sd over seeds; +/-: difference from the baseline; "
             f"~: within noise ({NOISE_SDS} standard errors of the seeds, or of 10,000 test "
             "images where a variant has one seed)")
    legend = [textwrap.fill(line, 100, subsequent_indent="    ") for line in legend]
    return "\n".join(legend) + "\n\n" + text + "\n\n" + textwrap.fill(notes, 100)


def stale_note(column: Column) -> str:
    if not column.stale:
        return ""
    which = "every variant" if ALL in column.stale else ", ".join(sorted(column.stale))
    return (f"; STALE: {which} (outputs not made by these params and code, so not shown): "
            f"{REPRO}")


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="*", help="revisions or experiments (default: workspace, "
                        "HEAD and HEAD's experiments)")
    parser.add_argument("--baseline", help="the column others are compared with (default: "
                        "HEAD, or the first revision named)")
    parser.add_argument("--md", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    columns = [rev_column(rev) for rev in args.revs] if args.revs else head_columns()
    if not columns:
        raise UserError("nothing to compare: no metrics in the workspace or at HEAD")
    names = [c.name for c in columns]
    if args.baseline is None:  # HEAD, found by what it is, not where it landed in the list
        heads = [i for i, c in enumerate(columns) if c.head]
        baseline = heads[0] if heads and not args.revs else 0
    elif args.baseline in names:
        baseline = names.index(args.baseline)
    else:
        columns.append(rev_column(args.baseline))
        baseline = len(columns) - 1
    print(table(columns, baseline, args.md))


if __name__ == "__main__":
    main()
