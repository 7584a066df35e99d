"""The architecture registry: small builders returning nn.Sequential, and `load_model`.

Every network takes images scaled to [0, 1], shape (N, 1, 28, 28): it normalizes inside
(`Normalize`, no parameters) and ends in log_softmax over the 10 classes.
Trailing comments: output side length after the layer, receptive field.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from stages.errors import UserError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # training-set pixel statistics on the [0, 1] scale
CHECKPOINT_FORMAT = 1


class Normalize(nn.Module):
    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def block(cin: int, cout: int, k: int, pad: int, p: float = 0.0, *, order: str = "rbd",
          bias: bool = True, drop2d: bool = False) -> nn.Sequential:
    """Conv followed by `order`: r = ReLU, b = BatchNorm, d = dropout (left out when p == 0)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=pad, bias=bias)]
    for op in order:
        if op == "r":
            layers.append(nn.ReLU())
        elif op == "b":
            layers.append(nn.BatchNorm2d(cout))
        elif op == "d" and p > 0:
            layers.append(nn.Dropout2d(p) if drop2d else nn.Dropout(p))
    return nn.Sequential(*layers)


def head() -> list[nn.Module]:
    return [nn.Flatten(), nn.LogSoftmax(dim=1)]


def seed004(p: float) -> list[nn.Module]:
    """Session-4 baseline, 12,514 params: conv-BN-ReLU, 1x1 transition, GAP, 1x1 classifier."""
    b = functools.partial(block, p=p, order="brd")
    return [
        b(1, 8, 3, 0),        # 26, rf 3
        b(8, 16, 3, 0),       # 24, rf 5
        b(16, 32, 3, 0),      # 22, rf 7
        nn.MaxPool2d(2),      # 11, rf 8
        b(32, 8, 1, 0),       # 11, rf 8
        b(8, 16, 3, 0),       # 9, rf 12
        b(16, 32, 3, 0),      # 7, rf 16
        nn.AdaptiveAvgPool2d(1),         # 1
        nn.Conv2d(32, 10, 1),            # 1
        *head(),
    ]


def seed000(p: float) -> list[nn.Module]:
    """Session 5 iteration 1, 18,010 params: conv-ReLU-BN-DO everywhere, 3x3 to a 1x1 output."""
    b = functools.partial(block, p=p, order="rbd")
    return [
        b(1, 8, 3, 1),        # 28, rf 3
        b(8, 8, 3, 1),        # 28, rf 5
        b(8, 8, 3, 1),        # 28, rf 7
        nn.MaxPool2d(2),      # 14, rf 8
        b(8, 16, 3, 1),       # 14, rf 12
        b(16, 16, 3, 1),      # 14, rf 16
        b(16, 16, 3, 1),      # 14, rf 20
        nn.MaxPool2d(2),      # 7, rf 22
        b(16, 32, 3, 0),      # 5, rf 30
        b(32, 16, 3, 0, order="bdr"),    # 3, rf 38
        nn.Conv2d(16, 10, 3),            # 1, rf 46
        *head(),
    ]


def seed001(p: float) -> list[nn.Module]:
    """'Under 10k', 9,736 params: 1-channel 1x1 bottlenecks, each followed by Dropout2d."""
    b = functools.partial(block, p=p, order="rbd", drop2d=True)
    return [
        b(1, 10, 3, 1),       # 28, rf 3
        b(10, 16, 3, 1),      # 28, rf 5
        b(16, 16, 3, 1),      # 28, rf 7
        nn.MaxPool2d(2),      # 14, rf 8
        b(16, 1, 1, 0),       # 14, rf 8   one channel: Dropout2d may blank it whole
        b(1, 10, 3, 1),       # 14, rf 12
        b(10, 16, 3, 1),      # 14, rf 16
        nn.MaxPool2d(2),      # 7, rf 18
        b(16, 1, 1, 0),       # 7, rf 18
        b(1, 10, 3, 0),       # 5, rf 26
        b(10, 16, 3, 0),      # 3, rf 34
        b(16, 16, 3, 0),      # 1, rf 42
        nn.Conv2d(16, 10, 1),            # 1
        *head(),
    ]


def _seed002(p: float, transition_1x1: bool) -> list[nn.Module]:
    b = functools.partial(block, p=p, order="rbd", bias=False, drop2d=True)
    first = [nn.Conv2d(8, 12, 1, bias=False), b(12, 12, 3, 0)] if transition_1x1 else [b(8, 12, 3, 0)]
    return [
        b(1, 8, 3, 1),        # 28, rf 3
        b(8, 8, 3, 1),        # 28, rf 5
        b(8, 8, 3, 1),        # 28, rf 7
        nn.MaxPool2d(2),      # 14, rf 8
        *first,               # 12, rf 12
        b(12, 12, 3, 0),      # 10, rf 16
        b(12, 12, 3, 0),      # 8, rf 20
        b(12, 12, 3, 0),      # 6, rf 24
        b(12, 12, 3, 0),      # 4, rf 28
        nn.AdaptiveAvgPool2d(1),         # 1
        nn.Conv2d(12, 10, 1, bias=False),
        *head(),
    ]


def seed002_it1(p: float) -> list[nn.Module]:
    """'99.4% with 8k', iterations 1 and 2, 8,088 params: 1x1 transition, 5 convs, GAP."""
    return _seed002(p, transition_1x1=True)


def seed002_it3(p: float) -> list[nn.Module]:
    """'99.4% with 8k', iteration 3, 7,560 params: iteration 1 without the 1x1."""
    return _seed002(p, transition_1x1=False)


def _seed003_plain(c: tuple[int, int, int, int, int], order: str, p: float) -> list[nn.Module]:
    """'Step by step' steps 1-2b: four 'same' convs, MP, two more, MP, 3x3 to 10, AvgPool."""
    b = functools.partial(block, p=p, order=order)
    return [
        b(1, c[0], 3, 1),     # 28, rf 3
        b(c[0], c[1], 3, 1),  # 28, rf 5
        b(c[1], c[2], 3, 1),  # 28, rf 7
        b(c[2], c[3], 3, 1),  # 28, rf 9
        nn.MaxPool2d(2),      # 14, rf 10
        b(c[3], c[4], 3, 1),  # 14, rf 14
        b(c[4], c[4], 3, 1),  # 14, rf 18
        nn.MaxPool2d(2),      # 7, rf 20
        nn.Conv2d(c[4], 10, 3),          # 5, rf 28
        nn.AvgPool2d(5, 2),              # 1, rf 44
        *head(),
    ]


def seed003_skeleton(p: float) -> list[nn.Module]:
    """'Step by step', step 1, 257,354 params: plain conv-ReLU, no BN, no dropout."""
    return _seed003_plain((8, 16, 32, 64, 128), "rd", p)


def seed003_bn(p: float) -> list[nn.Module]:
    """'Step by step', steps 2a (p = 0) and 2b, 19,942 params: thinner, BN (and dropout)."""
    return _seed003_plain((4, 8, 12, 16, 32), "rbd", p)


def seed003_gap(p: float) -> list[nn.Module]:
    """'Step by step', steps 2c and 3, 7,216 params: 1x1 transition, AvgPool, 1x1 classifier."""
    b = functools.partial(block, p=p, order="rbd")
    return [
        b(1, 8, 3, 1),        # 28, rf 3
        b(8, 12, 3, 1),       # 28, rf 5
        nn.Conv2d(12, 6, 1),  # 28, rf 5
        nn.MaxPool2d(2),      # 14, rf 6
        b(6, 12, 3, 0),       # 12, rf 10
        b(12, 12, 3, 0),      # 10, rf 14
        b(12, 12, 3, 1),      # 10, rf 18
        nn.MaxPool2d(2),      # 5, rf 20
        b(12, 12, 3, 0),      # 3, rf 28
        b(12, 12, 3, 1),      # 3, rf 36
        nn.AvgPool2d(3, 2),              # 1, rf 44
        nn.Conv2d(12, 10, 1),            # 1
        *head(),
    ]


def _ours(c: tuple[int, ...], p: float) -> list[nn.Module]:
    """This project's own: three valid 3x3 convs at full resolution (where an extra channel is
    cheapest), one max-pool, a 1x1 squeeze, three more 3x3 convs, GAP and a 1x1 classifier.
    conv-BN-ReLU(-dropout) throughout; no conv biases (BatchNorm right after makes them moot)."""
    b = functools.partial(block, p=p, order="brd", bias=False)
    return [
        b(1, c[0], 3, 0),     # 26, rf 3
        b(c[0], c[1], 3, 0),  # 24, rf 5
        b(c[1], c[2], 3, 0),  # 22, rf 7
        nn.MaxPool2d(2),      # 11, rf 8
        b(c[2], c[3], 1, 0),  # 11, rf 8
        b(c[3], c[4], 3, 0),  # 9, rf 12
        b(c[4], c[5], 3, 0),  # 7, rf 16
        b(c[5], c[6], 3, 1),  # 7, rf 20
        nn.AdaptiveAvgPool2d(1),         # 1
        nn.Conv2d(c[6], 10, 1),          # 1
        *head(),
    ]


def ours_narrow(p: float) -> list[nn.Module]:
    """This project's own, narrow, 6,414 params."""
    return _ours((8, 10, 12, 8, 12, 14, 14), p)


def ours_wide(p: float) -> list[nn.Module]:
    """This project's own, wide, 7,776 params."""
    return _ours((10, 12, 14, 10, 12, 14, 16), p)


ARCHITECTURES: dict[str, Callable[[float], list[nn.Module]]] = {
    "seed004": seed004,
    "seed000": seed000,
    "seed001": seed001,
    "seed002_it1": seed002_it1,
    "seed002_it3": seed002_it3,
    "seed003_skeleton": seed003_skeleton,
    "seed003_bn": seed003_bn,
    "seed003_gap": seed003_gap,
    "ours_narrow": ours_narrow,
    "ours_wide": ours_wide,
}


def build_model(arch: str, dropout: float = 0.0, mean: float = MNIST_MEAN,
                std: float = MNIST_STD) -> nn.Sequential:
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture {arch!r}; registered: {', '.join(ARCHITECTURES)}")
    return nn.Sequential(Normalize(mean, std), *ARCHITECTURES[arch](dropout))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_checkpoint(path: Path | str, model: nn.Module, recipe: dict) -> None:
    from stages.io import atomic_path

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "recipe": recipe, "state_dict": state}, tmp)


def load_model(path: Path | str) -> nn.Module:
    """Rebuild a trained network from its checkpoint, in eval mode, on the CPU.

    The model takes images in [0, 1], shape (N, 1, 28, 28), and returns log-probabilities.
    Checkpoints are read with `weights_only=True`: a file that would run code is refused.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint; run `dvc repro` to train it") from None
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a checkpoint this project can load safely ({first})") from None
    if not (isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT
            and isinstance(ckpt.get("recipe"), dict) and "state_dict" in ckpt):
        raise UserError(f"{path}: not a checkpoint written by this project's train stage")
    recipe = ckpt["recipe"]
    model = build_model(recipe["arch"], recipe.get("dropout", 0.0))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit architecture {recipe['arch']!r} ({e})") from None
    return model.eval()
