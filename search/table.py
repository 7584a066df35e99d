"""table: the search's table of the screen candidates, on their held-out images only.

    python -m search.table      (from the repository root; dvc runs it there)

Writes search/table.md: every candidate under search/params.yaml's `screen:` with its network, final
and last-3 validation accuracy over seeds and the worst seed x last-3 number; a candidate that
`improves_on` another (an ablation: one change from it) also gets what it changed, the difference
of mean last-3 accuracy (each seed's last three epochs averaged) with Welch's 95% interval,
and a verdict."""
from mnist_iter import files, report
from mnist_iter.cli import command
from mnist_iter.recipe import load_search

INTRO = ("Selection runs (`screen@<candidate>`): trained without the last val_size training "
         "images and measured on those only; the test set is never read. Accuracies in percent, "
         "mean ± sd over seeds; *worst*: the lowest of the seed × last-3-epoch numbers; *step*: "
         "what a candidate changes from the one it `improves_on`, and whether that moved the mean "
         "last-3 accuracy (Welch's 95% interval over the seeds' last-3 means; can't tell where "
         "it includes 0).")


@command
def main() -> None:
    candidates = load_search().screen
    read = {name: report.read_candidate(c) for name, c in candidates.items()}
    table = report.search_table(candidates, {n: r[0] for n, r in read.items()},
                                {n: r[1] for n, r in read.items()})
    text = table.to_markdown(index=False, disable_numparse=True) if len(table) else "(none)"
    with files.outputs() as out:
        out.text(files.SEARCH / "table.md", f"# Search\n\n{INTRO}\n\n{text}\n")
    print(text)


if __name__ == "__main__":
    main()
