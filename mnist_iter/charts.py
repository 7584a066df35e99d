"""The report's PNG charts: accuracy curves in one panel per write-up, and parameters against
accuracy with every point labelled."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mnist_iter import stats  # noqa: E402

BUDGETS = (4000, 5000, 6000, stats.TARGET_PARAMS)
PANEL_TITLES = {"002": "write-up 002: iterations 1 → 2 → 3",
                "003": "write-up 003: steps 1 → 2a → 2b → 2c → 3",
                "other": "write-ups 004, 000, 001 (one network each)",
                "ours": "this project's own against the best write-up network"}


def panels(results: list) -> dict[str, list]:
    """Variants grouped for the curves: 002's iterations, 003's steps, the single-network
    write-ups, and the project's own beside the variants they improve on."""
    by_name = {r.variant.name: r for r in results}
    groups: dict[str, list] = {"002": [], "003": [], "other": [], "ours": []}
    for result in results:
        key = result.group if result.group in ("002", "003", "ours") else "other"
        groups[key].append(result)
    rivals = [by_name[r.variant.improves_on] for r in groups["ours"]
              if r.variant.improves_on in by_name]
    groups["ours"] = list({id(r): r for r in rivals + groups["ours"]}.values())
    return {key: rows for key, rows in groups.items() if rows}


def plot_accuracy(results: list, out, path) -> None:
    groups = panels(results)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.4 * len(groups)), squeeze=False)
    for ax, (key, rows) in zip(axes[:, 0], groups.items()):
        lowest = stats.TARGET_ACC
        for i, result in enumerate(rows):
            curves = stats.test_curves(result.runs)
            mean, seeds = curves.mean(axis=1), curves.shape[1]
            color = plt.get_cmap("tab10").colors[i % 10]
            label = f"{result.variant.name} ({result.summary['params']:,} params, {seeds} seed" \
                    f"{'s' if seeds > 1 else ''})"
            ax.plot(mean.index, mean, marker="o", markersize=3, color=color, label=label,
                    linewidth=1.8)
            if seeds > 1:
                ax.fill_between(curves.index, curves.min(axis=1), curves.max(axis=1),
                                color=color, alpha=0.15)
            lowest = min(lowest, float(curves.iloc[min(2, len(curves) - 1):].min().min()))
        ax.axhline(stats.TARGET_ACC, color="black", linestyle="--", linewidth=1)
        ax.text(1.0, stats.TARGET_ACC, f" {stats.TARGET_ACC}%", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())
        ax.set_ylim(max(98.0, lowest - 0.1), 100)
        ax.set(ylabel="test accuracy (%)", title=PANEL_TITLES[key])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[-1, 0].set_xlabel("epoch (line: mean over seeds; band: min–max over seeds)")
    out.figure(path, fig)


def _label_points(ax, results: list) -> None:
    """Name every point beside it, covering no other name and no other marker: variants on the
    same spot share one label; a label tries the right, then the left, a line lower each time."""
    import itertools

    from matplotlib.transforms import Bbox

    spots: dict[tuple, list[str]] = {}
    for result in results:
        s = result.summary
        spots.setdefault((s["params"], round(s["last3"], 2)), []).append(result.variant.name)
    renderer = ax.figure.canvas.get_renderer()
    markers = {spot: Bbox.from_bounds(*(ax.transData.transform(spot) - 5), 10, 10)
               for spot in spots}
    labels: list = []  # window extents of the labels placed so far
    for spot, names in sorted(spots.items(), key=lambda item: -item[0][1]):
        others = [box for other, box in markers.items() if other != spot] + labels
        label = ax.annotate(", ".join(names), spot, xytext=(5, 3), textcoords="offset points",
                            fontsize=8)
        for line, (side, align) in itertools.product(range(8), ((5, "left"), (-5, "right"))):
            label.set_position((side, 3 - 10 * line))
            label.set_horizontalalignment(align)
            box = label.get_window_extent(renderer).padded(1)
            if not any(box.overlaps(other) for other in others):
                break
        labels.append(box)


def plot_params(results: list, out, path) -> None:
    """Parameters (log) against accuracy: the dot is the mean of the last three epochs over
    seeds, the line goes down to the worst of those epochs over seeds (the frontier's number)."""
    fig, ax = plt.subplots(figsize=(10, 6))
    for result in results:
        s = result.summary
        met = stats.meets_target(s)
        color = "tab:green" if met else "tab:red"
        ax.vlines(s["params"], s["worst3"], s["last3"], color=color, linewidth=1.5)
        ax.plot(s["params"], s["last3"], "o" if met else "X", color=color, markersize=7)
    ax.axhline(stats.TARGET_ACC, color="black", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    for budget in BUDGETS:  # the frontier's parameter budgets
        ax.axvline(budget, color="gray", linestyle=":", linewidth=1)
        ax.text(budget, 1.0, f"{budget / 1000:g}k ", rotation=90, ha="right", va="top",
                fontsize=7, color="gray", transform=ax.get_xaxis_transform(), gid="budget")
    _label_points(ax, results)
    ax.set(xlabel="parameters (log scale; dotted: the budgets of 4,000, 5,000, 6,000, 8,000)",
           ylabel="test accuracy (%), last 3 epochs",
           title="Parameters vs accuracy: dot = mean of the last 3 epochs over seeds, line down "
                 "to the worst of them\n(green o: target met on every seed; red x: not)")
    ax.grid(alpha=0.3, which="both")
    out.figure(path, fig)
