"""Copy the committed tables into README.md between marker comments, recomputing nothing:
reports/summary.md (results), reports/verdicts.md (verdicts), and the parameter table of
mnist_iter/recipe.py.

    python -m mnist_iter.readme README.md      (make readme)
"""
from __future__ import annotations

import sys
from pathlib import Path

from mnist_iter.cli import UserError, command
from mnist_iter.files import REPORTS, outputs
from mnist_iter.recipe import params_table


def markdown_table(path: Path, lead: bool = False) -> list[str]:
    """The table of a report file; with `lead`, the line right above it too (the summary's
    sentence on where the variants trained) and a blank line."""
    if not path.exists():
        raise UserError(f"{path} not found: run `dvc repro` (or `dvc pull`) first")
    lines = path.read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    if not table:
        raise UserError(f"{path} holds no markdown table: run `dvc repro` to rewrite it")
    above = [line for line in lines[:lines.index(table[0])] if line.strip()]
    return ([above[-1], ""] if lead and above else []) + table


def replace_block(lines: list[str], name: str, block: list[str], readme: Path) -> list[str]:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if [lines.count(start), lines.count(end)] != [1, 1]:
        raise UserError(f"{readme} needs the lines {start} and {end} once each")
    first, last = lines.index(start), lines.index(end)
    if last < first:
        raise UserError(f"{readme}: {end} comes before {start}")
    return lines[:first + 1] + block + lines[last:]


def update_readme(readme: Path, reports: Path = REPORTS) -> None:
    lines = readme.read_text().splitlines()
    blocks = {"summary": markdown_table(reports / "summary.md", lead=True),
              "verdicts": markdown_table(reports / "verdicts.md"),
              "params": params_table().splitlines()}
    for name, block in blocks.items():
        lines = replace_block(lines, name, block, readme)
    with outputs() as out:
        out.text(readme, "\n".join(lines) + "\n")


@command
def main() -> None:
    readme = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("README.md")
    update_readme(readme)
    print(f"{readme}: results, verdicts and parameter tables replaced")


if __name__ == "__main__":
    main()
