"""The portable arithmetic's fingerprint: a tiny training of two networks in `cpu_math: portable`,
hashed. Each trains 24 SGD steps (batches of 64, augmentation and dropout on, one of the two
with depthwise-separable convs), then evaluates 1,000 test images in batches of EVAL_BATCH.

    python -m benchmarks.portable [--mnist DIR] [--threads N]

Prints one JSON line: the CPU, torch, ATen's instruction set, and per network the SHA-256 of
its trained weights and of its evaluation's log-probabilities. On every x86-64 CPU with AVX2
they are the values tests/test_portable.py holds; docs/evidence.md lists the CPUs seen. Under
`qemu-x86_64 -cpu EPYC-Rome-v2` (Debian's qemu-user) it runs as an AVX2-only AMD EPYC would.
"""
from mnist_iter import cpu_math

cpu_math.enter("portable")  # before torch loads (or the command starts again with the pins)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from mnist_iter.data import load_split  # noqa: E402
from mnist_iter.device import device_name  # noqa: E402
from mnist_iter.engine import EVAL_BATCH, as_input, train_seed  # noqa: E402
from mnist_iter.models import MNIST_MEAN, MNIST_STD  # noqa: E402
from mnist_iter.recipe import make_recipe  # noqa: E402

TRAIN, TEST = 1536, 1000  # images: 24 steps of 64; the evaluation's
BASE = {"seed": 1, "seeds": 1, "threads": 1, "epochs": 1, "batch_size": 64,
        "train_subset": 0, "val_size": 0, "optimizer": "sgd", "lr": 0.04, "momentum": 0.9,
        "weight_decay": 0.0, "label_smoothing": 0.0, "scheduler": "none", "ema": 0.0,
        "dropout": 0.05, "rotation": 7.0, "scale": 0.0, "translate": 0.0, "fill": 0.0,
        "device": "cpu", "compile": "none", "amp": False, "cpu_math": "portable"}
NETS = {  # write-up 002's network with its StepLR; the ours family, all separable, one-cycle
    "writeup002_it3": {"arch": "writeup002_it3", "scheduler": "step", "step": 1,
                       "gamma": 0.2, "step_start": 1},
    "ours_separable": {"arch": "ours", "widths": "10-12-18-12-32-34-36", "separable": 5,
                       "scheduler": "onecycle", "max_lr": 0.15, "rotation": 10.0,
                       "scale": 0.1, "translate": 0.1},
}


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprint(mnist: Path, threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    train_images, train_labels = load_split(mnist, "train")
    test_images, test_labels = load_split(mnist, "test")
    data = {"train_images": train_images[:TRAIN], "train_labels": train_labels[:TRAIN],
            "test_images": test_images[:TEST], "test_labels": test_labels[:TEST],
            "mean": MNIST_MEAN, "std": MNIST_STD}
    nets = {}
    for name, own in NETS.items():
        recipe = make_recipe({**BASE, "threads": threads, **own})
        model, history = train_seed(recipe, data, torch.device("cpu"), log=lambda _: None)
        state = model.state_dict()
        with torch.no_grad():
            model.eval()
            logits = [model(as_input(data["test_images"][i:i + EVAL_BATCH]))
                      for i in range(0, TEST, EVAL_BATCH)]
        nets[name] = {"weights": digest(state[k] for k in sorted(state)),
                      "eval": digest(logits), "test_acc": history[-1]["test_acc"]}
    return {"cpu": device_name(torch.device("cpu")), "torch": torch.__version__,
            "aten_isa": torch.backends.cpu.get_cpu_capability(),
            "onednn_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "threads": threads,
            "nets": nets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("MNIST_SHARED", str(Path(__file__).resolve().parents[2] / "shared"
                                                 / "mnist"))
    parser.add_argument("--mnist", type=Path, default=Path(default),
                        help="folder with the four MNIST .gz files (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(fingerprint(args.mnist, args.threads)))


if __name__ == "__main__":
    main()
