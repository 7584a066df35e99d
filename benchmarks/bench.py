"""The benchmark (not a pipeline stage): this project's engine against a training loop written the way the write-ups do it.

    python -m benchmarks.bench [--device auto] [--steps 150] [--repeats 5] [--epochs 15] [--amp]
                           [--compile MODE] [--accuracy-seeds 0] [--out reports/bench.json]

Same network (seed 002 iteration 3, 7,560 params), batch 128, rotation ±7° on, SGD:
(a) reference: torchvision datasets.MNIST + DataLoader + RandomRotation + ToTensor + Normalize,
    reading the loss and running accuracy every batch as the write-ups' progress bars do;
(b) engine: the pipeline's own training loop (uint8 tensors on the device, randperm batches,
    batched grid_sample rotation).
Both time the same number of training steps after a warm-up, in --repeats pairs of windows
(reference, engine, reference, ...): the medians and the median of the pairs' ratios are the
result. Then the engine runs the variant's full recipe for --epochs epochs (0 skips it). Needs
data/MNIST/raw and data/mnist.pt (`dvc repro prepare`, or `python -m stages.download && python
-m stages.prepare`).
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import itertools
import dataclasses
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from mnist_iter.cli import UserError, command
from mnist_iter.data import FILES, load_data
from mnist_iter.device import PLAIN, device_name, pick_device, pick_speedups, place
from mnist_iter.engine import Split, evaluate, make_splits, make_step, train_epoch, train_seed
from mnist_iter.files import RAW_DIR, write_json
from mnist_iter.models import ARCHITECTURES, MNIST_MEAN, MNIST_STD, Normalize, build_model
from mnist_iter.recipe import load_params
from mnist_iter.schedule import Schedule, make_optimizer

VARIANT = "w2_it3"
BATCH, ROTATION, WARMUP = 128, 7.0, 10


@contextlib.contextmanager
def reference_batches(workers: int, subset: int = 0):
    """The write-ups' input pipeline, verbatim in spirit, as an endless stream of batches (of
    the first `subset` images when set, as the engine's train_subset). A temporary folder gets
    MNIST/raw/ unpacked from data/MNIST/raw, as torchvision's own download would leave it; it
    is removed on exit."""
    from torchvision import datasets, transforms

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for name in FILES:
            with gzip.open(RAW_DIR / name) as src, open(raw / name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        transform = transforms.Compose([
            transforms.RandomRotation((-ROTATION, ROTATION), fill=(0,)),
            transforms.ToTensor(),
            transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
        ])
        dataset = datasets.MNIST(tmp, train=True, download=False, transform=transform)
        if subset:
            dataset = torch.utils.data.Subset(dataset, range(subset))
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True,
                                             num_workers=workers, pin_memory=False)
        yield itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch


def reference_model(arch: str, dropout: float, device: torch.device) -> nn.Module:
    """The same network without its Normalize layer: the reference normalizes in the transform."""
    return nn.Sequential(*ARCHITECTURES[arch](dropout)).to(device)


def timed(steps: int, step, device: torch.device) -> float:
    """images/s over `steps` steps after a warm-up; syncs only at the ends."""
    for _ in range(WARMUP):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * BATCH / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def reference_window(steps: int, device: torch.device, arch: str, workers: int):
    """Yields a function that times `steps` steps of the reference loop (images/s); the model,
    optimizer and batch stream live on between calls."""
    torch.manual_seed(0)
    model = reference_model(arch, 0.05, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sgd_step = make_step(model, opt, None, device, PLAIN)
    seen = {"correct": 0, "images": 0}
    with reference_batches(workers) as batches:

        def step():
            x, y = next(batches)
            x, y = x.to(device), y.to(device)
            loss, out = sgd_step(x, y)
            # as the write-ups do for their tqdm bar: loss and running accuracy read every batch
            seen["correct"] += out.argmax(dim=1).eq(y).sum().item()
            seen["images"] += len(y)
            return f"Loss={loss.item()} Accuracy={100 * seen['correct'] / seen['images']:0.2f}"

        yield lambda: timed(steps, step, device)


def reference_fit(recipe, device: torch.device, data: dict, workers: int) -> float:
    """Train with the reference loop by the full recipe; returns the final test accuracy (%)."""
    torch.manual_seed(recipe.seed)
    model = reference_model(recipe.arch, recipe.dropout, device)
    opt = make_optimizer(model.parameters(), recipe)
    images = recipe.train_subset or len(data["train_labels"])
    steps_per_epoch = -(-images // BATCH)
    schedule = Schedule(opt, recipe, steps_per_epoch)
    sgd_step = make_step(model, opt, schedule, device, PLAIN)
    with reference_batches(workers, recipe.train_subset) as batches:
        for _ in range(recipe.epochs):
            model.train()
            for _ in range(steps_per_epoch):
                x, y = next(batches)
                sgd_step(x.to(device), y.to(device))
            schedule.after_epoch({})  # the benchmarked recipe steps per epoch, on no loss
    test = nn.Sequential(Normalize(), model)  # the test images get the same normalization
    _, acc, _ = evaluate(test, data["test_images"].to(device), data["test_labels"].to(device))
    return acc


def compare_accuracy(recipe, device: torch.device, data: dict, seeds: int, workers: int,
                     only: list[str] | None = None, first_seed: int = 1) -> dict:
    """Final test accuracy (%) by the same recipe over `seeds` seeds from `first_seed` on
    (first_seed, first_seed + 1, ...): the reference loop, the
    engine in fp32 eager, and the engine with the benchmarked speed-ups when they differ
    (bf16 autocast, compile): the numbers that decide whether a speed-up keeps its accuracy.
    `only` keeps some of these loops (the others repeat exactly on the same machine)."""
    fp32 = dataclasses.replace(recipe, amp=False, compile="none")
    def final_acc(r) -> float:
        return train_seed(r, data, device, log=lambda _: None)[1][-1]["test_acc"]

    runs = {"reference": lambda r: reference_fit(r, device, data, workers),
            "engine_fp32": final_acc}
    fast = pick_speedups(device, recipe)
    if fast != pick_speedups(device, fp32):
        runs[f"engine_{fast.name}"] = lambda r: final_acc(
            dataclasses.replace(r, amp=recipe.amp, compile=recipe.compile))
    if only:
        if unknown := [name for name in only if name not in runs]:
            raise UserError(f"--accuracy-loops: unknown loop {unknown[0]!r}; with these "
                            f"settings: {', '.join(runs)}")
        runs = {name: run for name, run in runs.items() if name in only}
    accs: dict[str, list[float]] = {name: [] for name in runs}
    for seed in range(first_seed, first_seed + seeds):
        for name, run in runs.items():
            accs[name].append(round(run(dataclasses.replace(fp32, seed=seed)), 2))
        print(f"  seed {seed}: " + "  ".join(f"{n} {a[-1]:.2f}%" for n, a in accs.items()),
              flush=True)
    std = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    return {"seeds": seeds, "first_seed": first_seed, "epochs": recipe.epochs} | {
        name: {"test_acc": a, "mean": round(statistics.mean(a), 3), "std": round(std(a), 3)}
        for name, a in accs.items()}


def engine_window(steps: int, device: torch.device, recipe, data: dict):
    """A function that times one pass of the real training loop (engine.train_epoch) over
    `steps` batches (images/s), after a warm-up pass made here; the model lives on between
    calls."""
    torch.manual_seed(0)
    r = dataclasses.replace(recipe, batch_size=BATCH, train_subset=steps * BATCH)
    speed = pick_speedups(device, r)
    model = place(build_model(r.arch, 0.05), device, speed)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = make_step(model, opt, None, device, speed)
    train = make_splits(data, r, device)["train"]
    gen = torch.Generator(device=device).manual_seed(0)
    warm = Split(train.images[:WARMUP * BATCH], train.labels[:WARMUP * BATCH])
    train_epoch(model, step, warm, r, gen, speed)

    def window() -> float:
        sync(device)
        t0 = time.perf_counter()
        train_epoch(model, step, train, r, gen, speed)  # ends by reading its metrics
        return steps * BATCH / (time.perf_counter() - t0)

    return window


def compare_throughput(steps: int, repeats: int, device: torch.device, recipe, data: dict,
                       workers: int) -> dict:
    """`repeats` pairs of timed windows, reference then engine, back to back: the machine's
    drift (a shared VM wanders by tens of percent between minutes) moves both members of a
    pair alike, so each pair's ratio is steadier than either throughput. Reports the medians
    and every run."""
    refs, engs = [], []
    with reference_window(steps, device, recipe.arch, workers) as reference:
        engine = engine_window(steps, device, recipe, data)
        for i in range(1, repeats + 1):
            refs.append(reference())
            engs.append(engine())
            print(f"  run {i}/{repeats}: reference {refs[-1]:8,.0f}   engine {engs[-1]:8,.0f} "
                  f"images/s   {engs[-1] / refs[-1]:.1f}x", flush=True)
    ratios = [e / r for e, r in zip(engs, refs)]
    return {"repeats": repeats,
            "reference_images_per_s": round(statistics.median(refs)),
            "engine_images_per_s": round(statistics.median(engs)),
            "speedup": round(statistics.median(ratios), 2),
            "reference_images_per_s_runs": [round(v) for v in refs],
            "engine_images_per_s_runs": [round(v) for v in engs],
            "speedup_runs": [round(v, 2) for v in ratios]}


def machine() -> dict:
    return {
        "machine": f"{platform.system()} {platform.machine()}, {device_name(torch.device('cpu'))}",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


@command
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per loop; 0 skips")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed windows per loop, interleaved; the medians are reported")
    parser.add_argument("--epochs", type=int, default=15, help="full engine run; 0 skips it")
    parser.add_argument("--workers", type=int, default=0,
                        help="reference DataLoader workers (the write-ups use 0 on CPU, 1 on CUDA)")
    parser.add_argument("--compile", default=None, help="override the recipe's compile mode")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--accuracy-seeds", type=int, default=0,
                        help="also train both loops by the full recipe with this many seeds "
                             "and compare final test accuracy (slow on a CPU)")
    parser.add_argument("--accuracy-first-seed", type=int, default=1,
                        help="seeds of the accuracy comparison: this one and the next ones")
    parser.add_argument("--accuracy-loops", type=lambda v: v.split(","), default=None,
                        help="comma-separated subset of reference,engine_fp32,engine_<speed-up>")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench.json"))
    args = parser.parse_args()
    allowed = {"repeats": (1, "at least 1")} | {
        name: (0, "0 or more (0 skips it)") for name in ("steps", "epochs", "accuracy_seeds")}
    for name, (least, words) in allowed.items():
        if (value := getattr(args, name)) < least:
            raise UserError(f"--{name.replace('_', '-')} = {value}: must be {words}")

    recipe = load_params().variant(VARIANT).recipe
    overrides = {"device": args.device, "rotation": ROTATION, "fill": 0.0}
    if args.compile is not None:
        overrides["compile"] = args.compile
    if args.amp is not None:
        overrides["amp"] = args.amp
    recipe = dataclasses.replace(recipe, **overrides)
    device = pick_device(recipe.device)
    data = load_data()
    info = machine() | {"device": str(device), "device_name": device_name(device),
                        "variant": VARIANT, "batch_size": BATCH, "rotation": ROTATION,
                        "timed_steps": args.steps, "speedups": str(pick_speedups(device, recipe))}
    print(f"benchmark on {info['device_name']} ({device}), {info['cpu_count']} CPUs, "
          f"torch {torch.__version__}")
    if args.steps:
        print(f"  throughput over {args.steps} steps of {BATCH} images, after {WARMUP} warm-up, "
              f"{args.repeats} times each, interleaved")
        info |= compare_throughput(args.steps, args.repeats, device, recipe, data, args.workers)
        span = lambda k, f=",": f"{min(info[k]):{f}}-{max(info[k]):{f}}"  # noqa: E731
        print(f"  reference  DataLoader + PIL rotation   {info['reference_images_per_s']:10,} "
              f"images/s   (runs {span('reference_images_per_s_runs')})")
        print(f"  engine     on-device batches          {info['engine_images_per_s']:10,} "
              f"images/s   (runs {span('engine_images_per_s_runs')})")
        print(f"  ratio      median of the pairs        {info['speedup']:10.2f}x          "
              f"(runs {span('speedup_runs', '.2f')}x)")
    if args.epochs:
        t0 = time.perf_counter()
        _, history = train_seed(dataclasses.replace(recipe, epochs=args.epochs), data, device)
        info |= {"full_run_epochs": args.epochs,
                 "full_run_seconds": round(time.perf_counter() - t0, 2),
                 "full_run_first_epoch_seconds": round(history[0]["seconds"], 2),
                 "full_run_final_test_acc": round(history[-1]["test_acc"], 2)}
        print(f"  full run   {args.epochs} epochs of {VARIANT}: {info['full_run_seconds']:.1f} s "
              f"(first epoch, incl. any compile: {history[0]['seconds']:.1f} s), "
              f"final test acc {history[-1]['test_acc']:.2f}%")
    if args.accuracy_seeds:
        info["accuracy"] = compare_accuracy(recipe, device, data, args.accuracy_seeds,
                                            args.workers, args.accuracy_loops,
                                            args.accuracy_first_seed)
        print("  accuracy   " + "  ".join(
            f"{name} {a['mean']:.2f} ± {a['std']:.2f}%" for name, a in info["accuracy"].items()
            if isinstance(a, dict)) + f"  (mean ± sd of {args.accuracy_seeds} seeds)")
    write_json(args.out, info)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
