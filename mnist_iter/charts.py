"""The report's PNG charts: accuracy curves in one panel per write-up, and parameters against
accuracy with every point labelled."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mnist_iter import stats  # noqa: E402

SMALL = 6000  # the project's own at or under this many parameters get a panel of their own
PANEL_TITLES = {"002": "write-up 002: iterations 1 → 2 → 3",
                "003": "write-up 003: steps 1 → 2a → 2b → 2c → 3",
                "other": "write-ups 004, 000, 001 (one network each)",
                "ours": f"this project's own over {SMALL:,} params, beside what they improve on",
                "ours_small": f"this project's own at or under {SMALL:,} params (the frontier), "
                              f"beside what they shrink"}
ZOOM = (3000, 9000)  # the params chart's second panel: the frontier, on a linear axis


def panels(results: list) -> dict[str, list]:
    """Variants grouped for the curves: 002's iterations, 003's steps, the single-network
    write-ups, and the project's own (over and under SMALL parameters) beside the variants
    they improve on."""
    by_name = {r.variant.name: r for r in results}
    groups: dict[str, list] = {"002": [], "003": [], "other": [], "ours": [], "ours_small": []}
    for result in results:
        key = result.group if result.group in ("002", "003", "ours") else "other"
        if key == "ours" and result.summary["params"] <= SMALL:
            key = "ours_small"
        groups[key].append(result)
    for key in ("ours", "ours_small"):
        rivals = [by_name[r.variant.improves_on] for r in groups[key]
                  if r.variant.improves_on in by_name]
        groups[key] = list({id(r): r for r in rivals + groups[key]}.values())
    return {key: rows for key, rows in groups.items() if rows}


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES = ("-", "--", "-.", ":")
ZOOM_ACC = (98.5, 99.7)  # the curves' right panels: where the variants differ


def line_style(i: int) -> dict:
    """The i-th line of a panel: its own colour, marker and dash, however many share it."""
    return {"color": plt.get_cmap("tab10").colors[i % 10], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[(i // 2) % len(DASHES)]}


def plot_accuracy(results: list, out, path) -> None:
    """A row a group: left every epoch (where the runs start), right the later epochs on
    ZOOM_ACC (where they differ, with each mean's min-max band over seeds)."""
    groups = panels(results)
    fig, axes = plt.subplots(len(groups), 2, figsize=(12, 3.6 * len(groups)), squeeze=False,
                             width_ratios=(1, 2.2))
    for (left, right), (key, rows) in zip(axes, groups.items()):
        epochs = max(len(stats.test_curves(r.runs)) for r in rows)
        first = max(1, epochs // 2)
        low = min(ZOOM_ACC[0], min(float(stats.test_curves(r.runs).mean(axis=1).iloc[first - 1:]
                                         .min()) for r in rows) - 0.05)
        for i, result in enumerate(rows):
            curves = stats.test_curves(result.runs)
            mean, seeds = curves.mean(axis=1), curves.shape[1]
            style = line_style(i)
            label = f"{result.variant.name} ({result.summary['params']:,} params, {seeds} seed" \
                    f"{'s' if seeds > 1 else ''})"
            left.plot(mean.index, mean, markersize=2.5, linewidth=1.2, **style)
            later = mean.index >= first
            right.plot(mean.index[later], mean[later], markersize=5, linewidth=1.6, label=label,
                       **style)
            if seeds > 1:
                right.fill_between(curves.index[later], curves.min(axis=1)[later],
                                   curves.max(axis=1)[later], color=style["color"], alpha=0.08)
        for ax in (left, right):
            ax.axhline(stats.TARGET_ACC, color="black", linestyle="--", linewidth=1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        right.text(1.0, stats.TARGET_ACC, f" {stats.TARGET_ACC}%", va="center", fontsize=8,
                   transform=right.get_yaxis_transform())
        left.set(ylabel="test accuracy (%)", title="every epoch")
        right.set_ylim(low, ZOOM_ACC[1])
        right.set_xlim(first - 0.3, epochs + 0.3)
        right.set_title(f"{PANEL_TITLES[key]}: epochs {first}-{epochs}", fontsize=10)
        right.legend(fontsize=8, loc="lower right")
    axes[-1, 0].set_xlabel("epoch (mean over seeds)")
    axes[-1, 1].set_xlabel("epoch (line: mean over seeds; band: min–max over seeds)")
    out.figure(path, fig)


def _label_points(ax, results: list) -> None:
    """Name every point beside it, covering no other name, no other marker and no axis: variants
    whose markers overlap share one label (in order of parameters), so that no name sits beside
    the wrong one of two touching markers; a label tries spots on rings around its point, nearest
    first, and is tied to the point by a thin line when it had to move away from it."""
    from matplotlib.transforms import Bbox

    points = sorted((r.summary["params"], order, round(r.summary["last3"], 2), r.variant.name)
                    for order, r in enumerate(results))  # parameters, then params.yaml's order
    markers = {(x, y): Bbox.from_bounds(*(ax.transData.transform((x, y)) - 6), 12, 12)
               for x, _, y, _ in points}
    groups: list[list[tuple]] = []  # points whose markers overlap, joined one by one
    for point in points:
        box = markers[point[0], point[2]]
        touching = [g for g in groups if any(box.overlaps(markers[p[0], p[2]]) for p in g)]
        groups = [g for g in groups if g not in touching] + [sum(touching, []) + [point]]
    spots = {}  # the group's highest point -> its names
    for group in groups:
        x, _, y, _ = max(group, key=lambda p: (p[2], -p[0]))
        spots[x, y] = [name for *_, name in sorted(group)]
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    tries = [(5, 3, "left")] + [  # (dx, dy, alignment) in points, nearest first
        (dx, dy, "left" if dx >= 0 else "right")
        for radius in (12, 24, 36, 48, 64)
        for dx, dy in ((radius, 0), (-radius, 0), (radius * 0.7, -radius), (-radius * 0.7, -radius),
                       (radius * 0.7, radius), (-radius * 0.7, radius), (0, -radius), (0, radius))]
    labels: list = []  # window extents of the labels placed so far
    for spot, names in sorted(spots.items(), key=lambda item: (-item[0][1], item[0][0])):
        others = [box for other, box in markers.items() if other != spot] + labels
        label = ax.annotate(", ".join(names), spot, xytext=(5, 3), textcoords="offset points",
                            fontsize=8, va="center")
        for dx, dy, align in tries:
            label.set_position((dx, dy))
            label.set_horizontalalignment(align)
            box = label.get_window_extent(renderer).padded(2)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in others):
                break
        if (dx, dy) != tries[0][:2]:
            ax.annotate("", spot, xytext=(dx, dy), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": "gray", "linewidth": 0.6,
                                    "shrinkA": 0, "shrinkB": 4})
        labels.append(box)


def _draw_points(ax, results: list) -> None:
    """A marker and a line a variant; variants of one parameter count side by side (9 points
    apart), so that no marker hides another."""
    from matplotlib.transforms import ScaledTranslation

    counts: dict[int, list] = {}
    for result in results:
        counts.setdefault(result.summary["params"], []).append(result)
    for same in counts.values():
        for k, result in enumerate(same):
            s = result.summary
            met = stats.meets_target(s)
            color = "tab:green" if met else "tab:red"
            shift = ax.transData + ScaledTranslation((k - (len(same) - 1) / 2) * 9 / 72, 0,
                                                     ax.figure.dpi_scale_trans)
            ax.vlines(s["params"], s["worst3"], s["last3"], color=color, linewidth=1.5,
                      transform=shift)
            ax.plot(s["params"], s["last3"], "o" if met else "X", color=color, markersize=7,
                    transform=shift)
            ax.update_datalim([(s["params"], s["worst3"]), (s["params"], s["last3"])])
    ax.autoscale_view()
    ax.axhline(stats.TARGET_ACC, color="black", linestyle="--", linewidth=1)
    for budget in stats.FRONTIER:
        ax.axvline(budget, color="gray", linestyle=":", linewidth=1)
        ax.text(budget, 1.0, f"{budget / 1000:g}k ", rotation=90, ha="right", va="top",
                fontsize=7, color="gray", transform=ax.get_xaxis_transform(), gid="budget")
    ax.grid(alpha=0.3, which="both")


def plot_params(results: list, out, path) -> None:
    """Parameters against accuracy: the dot is the mean of the last three epochs over seeds, the
    line goes down to the worst of those epochs over seeds (the frontier's number). Top: every
    variant on a log axis; bottom: the frontier (ZOOM parameters) on a linear one, where the
    names of the top panel's crowded points are."""
    from matplotlib.patches import Rectangle

    zoomed = [r for r in results if ZOOM[0] <= r.summary["params"] <= ZOOM[1]]
    if zoomed:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 11), height_ratios=(1, 1.3))
    else:  # nothing on the frontier: the one panel
        fig, top = plt.subplots(figsize=(10, 6))
    _draw_points(top, results)
    top.set_xscale("log")
    if zoomed:
        low = min(r.summary["worst3"] for r in zoomed) - 0.03
        high = max(r.summary["last3"] for r in zoomed) + 0.03
        top.add_patch(Rectangle((ZOOM[0], low), ZOOM[1] - ZOOM[0], high - low, fill=False,
                                edgecolor="tab:blue", linewidth=1, linestyle="-"))
        top.annotate("zoomed below", (ZOOM[0], low), xytext=(0, -4), textcoords="offset points",
                     va="top", fontsize=7, color="tab:blue", gid="zoom")
    top.set(xlabel="parameters (log scale; dotted: the budgets of 4,000, 5,000, 6,000, 8,000)",
            ylabel="test accuracy (%), last 3 epochs",
            title="Parameters vs accuracy: dot = mean of the last 3 epochs over seeds, line down "
                  "to the worst of them\n(green o: target met on every seed; red x: not)")
    if zoomed:
        _draw_points(bottom, zoomed)
        bottom.set_xlim(*ZOOM)
        bottom.set_ylim(low, high + 0.02)
        bottom.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
        bottom.set(xlabel=f"parameters ({ZOOM[0]:,} to {ZOOM[1]:,}, linear)",
                   ylabel="test accuracy (%), last 3 epochs",
                   title=f"The frontier: the networks under {ZOOM[1]:,} parameters")
    fig.tight_layout()  # before the names: they are placed in the final layout's pixels
    _label_points(top, [r for r in results if r not in zoomed])
    if zoomed:
        _label_points(bottom, zoomed)
    out.figure(path, fig)
