"""Copy the committed tables between marker comments, recomputing nothing: into README.md,
reports/results.md (results, the compact table), reports/verdicts.md (verdicts) and
reports/frontier.md (frontier); into docs/parameters.md, the parameter table of
mnist_iter/recipe.py.

    python -m mnist_iter.readme [README.md [docs/parameters.md]]      (make readme)
"""
from __future__ import annotations

import sys
from pathlib import Path

from mnist_iter.cli import UserError, command
from mnist_iter.files import REPORTS, outputs
from mnist_iter.recipe import params_table


def markdown_table(path: Path, lead: bool = False) -> list[str]:
    """The table of a report file; with `lead`, the paragraph right above it too (the sentence
    on where the variants trained) and a blank line."""
    if not path.exists():
        raise UserError(f"{path} not found: run `dvc repro` (or `dvc pull`) first")
    lines = path.read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    if not table:
        raise UserError(f"{path} holds no markdown table: run `dvc repro` to rewrite it")
    above = lines[:lines.index(table[0])]
    blank = [i for i, line in enumerate(above[:-1]) if not line.strip() and above[i + 1].strip()]
    paragraph = [line for line in above[blank[-1]:] if line.strip()] if blank else []
    return (paragraph + [""] if lead and paragraph else []) + table


def replace_block(lines: list[str], name: str, block: list[str], readme: Path) -> list[str]:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if [lines.count(start), lines.count(end)] != [1, 1]:
        raise UserError(f"{readme} needs the lines {start} and {end} once each")
    first, last = lines.index(start), lines.index(end)
    if last < first:
        raise UserError(f"{readme}: {end} comes before {start}")
    return lines[:first + 1] + block + lines[last:]


def fill(path: Path, blocks: dict[str, list[str]]) -> str:
    if not path.is_file():
        raise UserError(f"{path} not found: it holds the marker comments the tables go between")
    lines = path.read_text().splitlines()
    for name, block in blocks.items():
        lines = replace_block(lines, name, block, path)
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, reports: Path = REPORTS,
                  parameters: Path = Path("docs/parameters.md")) -> None:
    """Both files or neither: every table is read and every marker checked before a write."""
    texts = {readme: fill(readme, {"summary": markdown_table(reports / "results.md", lead=True),
                                   "verdicts": markdown_table(reports / "verdicts.md"),
                                   "frontier": markdown_table(reports / "frontier.md")}),
             parameters: fill(parameters, {"params": params_table().splitlines()})}
    with outputs() as out:
        for path, text in texts.items():
            out.text(path, text)


@command
def main() -> None:
    args = [Path(arg) for arg in sys.argv[1:]]
    readme = args[0] if args else Path("README.md")
    parameters = args[1] if len(args) > 1 else Path("docs/parameters.md")
    update_readme(readme, parameters=parameters)
    print(f"{readme}: results, verdicts and frontier tables replaced; {parameters}: parameter "
          "table")


if __name__ == "__main__":
    main()
