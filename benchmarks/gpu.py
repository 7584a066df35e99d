"""The GPU benchmark: today's one-seed eager loop against the seeds-as-one-network path with
CUDA graphs, then the whole committed run's training, on one device, in one process.

    MNIST_MIRROR=<folder with the four .gz files> python -m benchmarks.gpu \
        --out benchmarks/results/gpu_<device>.json [--seconds 420]
    python -m benchmarks.gpu --render benchmarks/results/gpu_<device>.json   # -> docs/evidence.md

Needs torch (no DVC): prepares data/mnist.pt with the download and prepare stages as plain
modules when it is missing. Parts, each timed from the first step to the last epoch's test
pass, with the device synchronized:
  smoke         w2_it3, 2 seeds, 2 epochs on 4,096 images, as one network eager and with CUDA
                graphs: the same weights bit for bit? (a capture that fails says why here)
  eager_1       w2_it3, seed 1, 14 epochs: the per-seed engine (engine.train_seed), today's way
  graphs_1      the same seed through mnist_iter/batched.py, one CUDA graph a step
  batched_eager w2_it3's 5 seeds as one network, eager (what the graphs add)
  graphs_5      w2_it3's 5 seeds as one network, CUDA graphs
  whole_run     every registered variant, every seed, at its own recipe, one after another
The whole run stops at --seconds (counted from the start) and says which variants it left out.
The JSON is written after every part (and every variant of the whole run), so a time-out keeps
what was measured; a part that fails is recorded with its error and the next part runs.
`--device cpu --train-subset N --epochs E` makes a small run of the same code (the tests).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.gpu_train import steps
from mnist_iter import batched
from mnist_iter.device import device_name, pick_device, pick_speedups
from mnist_iter.engine import seed_recipes, train_seed
from mnist_iter.files import DATA_FILE

VARIANT = "w2_it3"
EVIDENCE = Path("docs/evidence.md")
GOALS = {"graphs_5": 15.0, "whole_run": 240.0}  # seconds on one H100 (issue 48)
MARKERS = ("<!-- gpu:start -->", "<!-- gpu:end -->")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def timed(recipes: list, data: dict, device: torch.device, how: str) -> dict:
    """Train the recipes' seeds `how` ('eager_seeds': one after another, the per-seed engine;
    'batched' / 'batched_eager': as one network, with / without CUDA graphs)."""
    quiet = lambda _: None  # noqa: E731
    sync(device)
    start = time.perf_counter()
    if how == "eager_seeds":
        histories = [train_seed(r, data, device, quiet)[1] for r in recipes]
    else:
        with env(CUDA_GRAPHS="0" if how == "batched_eager" else "1"):
            histories = [h for _, h in batched.train_seeds(recipes, data, device, quiet)]
    sync(device)
    seconds = time.perf_counter() - start
    seed_steps = steps(recipes[0]) * len(recipes)  # seed_recipes: each has seeds = 1
    last3 = [sum(row["test_acc"] for row in h[-3:]) / len(h[-3:]) for h in histories]
    return {"seeds": len(recipes), "epochs": recipes[0].epochs, "seconds": round(seconds, 2),
            "seed_steps": seed_steps, "seed_steps_per_s": round(seed_steps / seconds, 1),
            "arithmetic": pick_speedups(device, recipes[0]).name,
            "last3_test_acc": [round(a, 3) for a in last3]}


def prepare_data() -> dict:
    from mnist_iter.data import load_data

    if not DATA_FILE.exists():
        for stage in ("download", "prepare"):
            subprocess.run([sys.executable, "-m", f"stages.{stage}"], check=True)
    return load_data(DATA_FILE)


def smoke(recipe, data: dict, device: torch.device) -> dict:
    """The batched path eager against its CUDA graphs, on a small run: identical weights?"""
    small = dict(data, test_images=data["test_images"][:1000], test_labels=data["test_labels"][:1000])
    recipes = seed_recipes(dataclasses.replace(recipe, seeds=2, epochs=2, train_subset=4096))
    states = {}
    for how, graphs in (("eager", "0"), ("graphs", "1")):
        with env(CUDA_GRAPHS=graphs):
            states[how] = [s for s, _ in batched.train_seeds(recipes, small, device, lambda _: None)]
    same = all(torch.equal(a[k], b[k]) for a, b in zip(states["eager"], states["graphs"])
               for k in a)
    return {"seeds": 2, "epochs": 2, "identical": same,
            "graphs": batched.uses_graphs(device)}


def run(args, save=lambda result: None) -> dict:
    """Every part of args.parts in turn; `save(result)` after each one."""
    from mnist_iter.recipe import load_params

    began = time.perf_counter()
    device = pick_device(args.device)
    data = prepare_data()
    variants = load_params().variants

    def recipe_of(name: str, **change):
        r = variants[name].recipe
        if args.train_subset:
            change["train_subset"] = args.train_subset
        if args.epochs:
            change["epochs"] = args.epochs
        return dataclasses.replace(r, **change)

    one = seed_recipes(recipe_of(VARIANT, seeds=1))
    five = seed_recipes(recipe_of(VARIANT))
    parts = {}
    result = {"device": str(device), "device_name": device_name(device),
              "torch": torch.__version__,
              "cuda": torch.version.cuda if device.type == "cuda" else None,
              "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
              "python": platform.python_version(),
              "date": datetime.date.today().isoformat(),
              "settings": "cudnn.benchmark off, cudnn.deterministic on, TF32 off",
              "train_subset": args.train_subset, "epochs_override": args.epochs,
              "parts": parts, "goals_s": GOALS}
    plan = {"eager_1": (one, "eager_seeds"), "graphs_1": (one, "batched"),
            "batched_eager": (five, "batched_eager"), "graphs_5": (five, "batched")}
    for part in args.parts:
        try:
            if part == "smoke":
                parts[part] = smoke(variants[VARIANT].recipe, data, device)
            elif part in plan:
                recipes, how = plan[part]
                parts[part] = timed(recipes, data, device, how)
            elif part == "whole_run":
                whole_run(args, variants, recipe_of, data, device, began, parts, result, save)
        except Exception as e:  # noqa: BLE001 (one failing part keeps the others' numbers)
            parts[part] = {"error": f"{type(e).__name__}: "
                                    f"{(str(e).strip().splitlines() or [''])[0][:300]}"}
        print(f"{part}: {parts.get(part)}", flush=True)
        save(result)
    return result


def whole_run(args, variants, recipe_of, data, device, began, parts, result, save) -> None:
    whole, left = {}, []
    start = time.perf_counter()
    for name in args.variants or variants:
        if time.perf_counter() - began > args.seconds:
            left.append(name)
            continue
        whole[name] = timed(seed_recipes(recipe_of(name)), data, device, "batched")
        print(f"whole_run {name}: {whole[name]}", flush=True)
        parts["whole_run"] = summary(whole, left, time.perf_counter() - start)
        save(result)
    parts["whole_run"] = summary(whole, left, time.perf_counter() - start)


def summary(whole: dict, left: list, seconds: float) -> dict:
    seed_steps = sum(v["seed_steps"] for v in whole.values())
    return {"seconds": round(seconds, 1), "variants": whole, "left_out": left,
            "seed_steps": seed_steps,
            "seed_steps_per_s": round(seed_steps / seconds, 1) if seconds else 0.0}


def table(result: dict) -> str:
    """The markdown table docs/evidence.md shows of one result."""
    p = result["parts"]
    lines = [f"Measured on {result['device_name']} ({result['date']}), torch {result['torch']}, "
             f"CUDA {result['cuda']}, {result['settings']}; `python -m benchmarks.gpu`.", "",
             "| part | seeds | arithmetic | seconds | seed-steps a second | goal |",
             "|---|---:|---|---:|---:|---|"]
    names = {"eager_1": f"{VARIANT}, one seed, per-seed engine (eager)",
             "graphs_1": f"{VARIANT}, one seed, batched path with CUDA graphs",
             "batched_eager": f"{VARIANT}, 5 seeds as one network, eager",
             "graphs_5": f"{VARIANT}, 5 seeds as one network, CUDA graphs"}
    if "smoke" in p:
        smoke_row = p["smoke"].get("error") or (
            "identical weights" if p["smoke"]["identical"] else "**weights differ**")
        lines.insert(0, f"Smoke test ({VARIANT}, 2 seeds, 2 epochs, eager against CUDA graphs): "
                        f"{smoke_row}.\n")
    for key, name in names.items():
        if key in p and "error" in p[key]:
            lines.append(f"| {name} | | | failed: {p[key]['error']} | | |")
        elif key in p:
            goal = f"≤ {GOALS[key]:g} s: {'met' if p[key]['seconds'] <= GOALS[key] else 'not met'}" \
                if key in GOALS else ""
            lines.append(f"| {name} | {p[key]['seeds']} | {p[key]['arithmetic']} | "
                         f"{p[key]['seconds']:.1f} | {p[key]['seed_steps_per_s']:,.0f} | {goal} |")
    if "whole_run" in p and "error" in p["whole_run"]:
        lines.append(f"| the whole committed run | all | | failed: {p['whole_run']['error']} | | |")
    elif "whole_run" in p:
        w = p["whole_run"]
        done = "met" if not w["left_out"] and w["seconds"] <= GOALS["whole_run"] else "not met"
        left = f" ({len(w['left_out'])} variants left out at the deadline)" if w["left_out"] else ""
        arith = sorted({v["arithmetic"] for v in w["variants"].values()})
        lines.append(f"| the whole committed run, {len(w['variants'])} variants{left} | all | "
                     f"{', '.join(arith)} | {w['seconds']:.1f} | {w['seed_steps_per_s']:,.0f} | "
                     f"≤ {GOALS['whole_run']:g} s: {done} |")
    return "\n".join(lines)


def render(path: Path, evidence: Path = EVIDENCE) -> None:
    """Put the result's table between the gpu markers of docs/evidence.md."""
    text = evidence.read_text()
    start, end = (text.index(m) for m in MARKERS)
    body = table(json.loads(path.read_text()))
    evidence.write_text(text[:start + len(MARKERS[0])] + "\n" + body + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="a result JSON to put into docs/evidence.md")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seconds", type=float, default=420,
                        help="deadline for the whole run, counted from the start")
    parser.add_argument("--parts", nargs="+", default=["smoke", "eager_1", "graphs_1",
                                                       "batched_eager", "graphs_5", "whole_run"])
    parser.add_argument("--variants", nargs="*", help="the whole run's variants (default: all)")
    parser.add_argument("--train-subset", type=int, default=0, help="0: every training image")
    parser.add_argument("--epochs", type=int, default=0, help="0: each recipe's own")
    args = parser.parse_args()
    if args.render:
        render(args.render)
        return
    if not args.out:
        parser.error("--out is needed (or --render)")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(result: dict) -> None:  # after every part: a time-out keeps what was measured
        partial = args.out.with_suffix(".tmp")
        partial.write_text(json.dumps(result, indent=2) + "\n")
        partial.replace(args.out)

    result = run(args, save)
    print(table(result))


if __name__ == "__main__":
    main()
