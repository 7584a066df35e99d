"""report: compare every variant over its seeds, each described by the resolved recipe its
model was trained with (configs/<v>.json, which its train stage depends on), not params.yaml.
Not a dependency of its own: a changed config re-trains its variant, which changes
reports/variants, which is one.

Writes reports/metrics/<v>.json (one small file a variant: `dvc metrics show`),
reports/headline.json ({variant: last-3 mean}: one column a variant in `dvc exp show`),
reports/summary.md (the table), reports/results.md (its compact form, the README's),
reports/verdicts.md/.json (each step against the one it
improves on), reports/frontier.md (the smallest networks that hold the target),
reports/curves.csv (every variant's mean curves: `dvc plots`) and two PNGs."""
import dataclasses

from mnist_iter import charts, files, report
from mnist_iter.cli import command
from mnist_iter.recipe import load_config, load_params
from mnist_iter.stats import LAST, TARGET_ACC, TARGET_EPOCHS, TARGET_PARAMS

REPORTS = files.REPORTS
INTRO = (f"Accuracies on the 10,000 MNIST test images, in percent, over each variant's seeds "
         f"(mean ± sd). *final*: after the last epoch; *last-3*: mean of the last {LAST} epochs "
         f"(the headline), with its 95% confidence interval over seeds; *≥ 99.4*: how many of "
         f"the seed × last-{LAST}-epoch numbers reach {TARGET_ACC}%, and *worst* the lowest of "
         f"them; *reported*: the write-up's own best; *best (epoch)*: the best epoch of the mean "
         f"curve, picked on the test set as the write-ups did, so optimistic. *target*: < "
         f"{TARGET_PARAMS:,} parameters, ≤ {TARGET_EPOCHS} epochs and every one of those numbers "
         f"≥ {TARGET_ACC}%. One test image is 0.01 points.")


@command
def main() -> None:
    variants = {name: dataclasses.replace(v, recipe=load_config(files.config_file(name), name))
                for name, v in load_params().variants.items()}
    results = [report.read_result(v) for v in variants.values()]
    pairs = [(v.name, v.improves_on) for v in variants.values() if v.improves_on]
    verdicts = report.verdicts(results, pairs)
    with files.outputs() as out:
        for result in results:
            out.json(REPORTS / "metrics" / f"{result.variant.name}.json",
                     report.dvc_metrics(result.summary))
        out.json(REPORTS / "headline.json", {r.variant.name: round(r.summary["last3"], 2)
                                       for r in results})
        table = report.summary_table(results).to_markdown(index=False, disable_numparse=True)
        out.text(REPORTS / "summary.md",
                 f"# Summary\n\n{INTRO}\n\n{report.machines(results)}\n\n{table}\n")
        out.text(REPORTS / "verdicts.md", "# Iteration verdicts\n\nEach step against the variant it "
                 "improves on: the difference of mean final accuracy with Welch's 95% interval "
                 "over seeds (better / worse where it excludes 0, can't tell otherwise), and "
                 "McNemar's exact test on the first seeds' test predictions.\n\n"
                 + report.verdicts_markdown(verdicts) + "\n")
        out.json(REPORTS / "verdicts.json", {f"{row['before']}->{row['after']}": row for row in verdicts})
        out.text(REPORTS / "frontier.md", report.frontier_markdown(results))
        out.text(REPORTS / "results.md", report.results_markdown(results))
        report.curves(results).to_csv(out.path(REPORTS / "curves.csv"), index=False,
                                      float_format="%.6g")
        charts.plot_accuracy(results, out, REPORTS / "accuracy.png")
        charts.plot_params(results, out, REPORTS / "params_vs_accuracy.png")
    files.remove_others(REPORTS / "metrics", "*.json",
                        {REPORTS / "metrics" / f"{name}.json" for name in variants})
    print(report.printed(results, verdicts))


if __name__ == "__main__":
    main()
