"""The architecture registry: small builders returning nn.Sequential (checkpoints: checkpoint.py).

Every network takes images scaled to [0, 1], shape (N, 1, 28, 28): it normalizes inside
(`Normalize`, no parameters) and ends in log_softmax over the 10 classes.
Trailing comments: output side length after the layer, receptive field.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn

from mnist_iter.cli import UserError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # training-set pixel statistics on the [0, 1] scale


class Normalize(nn.Module):
    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def block(cin: int, cout: int, kernel: int, pad: int, dropout: float = 0.0, *, order: str = "rbd",
          bias: bool = True, drop2d: bool = False) -> nn.Sequential:
    """Conv followed by `order`: r = ReLU, b = BatchNorm, d = dropout (left out when dropout == 0)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, padding=pad, bias=bias)]
    for op in order:
        if op == "r":
            layers.append(nn.ReLU())
        elif op == "b":
            layers.append(nn.BatchNorm2d(cout))
        elif op == "d" and dropout > 0:
            layers.append(nn.Dropout2d(dropout) if drop2d else nn.Dropout(dropout))
    return nn.Sequential(*layers)


def head() -> list[nn.Module]:
    return [nn.Flatten(), nn.LogSoftmax(dim=1)]


def writeup004(dropout: float) -> list[nn.Module]:
    """Write-up 004, the session-4 baseline, 12,514 params: conv-BN-ReLU, 1x1 transition, GAP, 1x1 classifier."""
    conv = functools.partial(block, dropout=dropout, order="brd")
    return [
        conv(1, 8, 3, 0),         # 26, rf 3
        conv(8, 16, 3, 0),        # 24, rf 5
        conv(16, 32, 3, 0),       # 22, rf 7
        nn.MaxPool2d(2),          # 11, rf 8
        conv(32, 8, 1, 0),        # 11, rf 8
        conv(8, 16, 3, 0),        # 9, rf 12
        conv(16, 32, 3, 0),       # 7, rf 16
        nn.AdaptiveAvgPool2d(1),  # 1
        nn.Conv2d(32, 10, 1),     # 1
        *head(),
    ]


def writeup000(dropout: float) -> list[nn.Module]:
    """Write-up 000, session 5 iteration 1, 18,010 params: conv-ReLU-BN-DO everywhere, 3x3 to a 1x1 output."""
    conv = functools.partial(block, dropout=dropout, order="rbd")
    return [
        conv(1, 8, 3, 1),         # 28, rf 3
        conv(8, 8, 3, 1),         # 28, rf 5
        conv(8, 8, 3, 1),         # 28, rf 7
        nn.MaxPool2d(2),          # 14, rf 8
        conv(8, 16, 3, 1),        # 14, rf 12
        conv(16, 16, 3, 1),       # 14, rf 16
        conv(16, 16, 3, 1),       # 14, rf 20
        nn.MaxPool2d(2),          # 7, rf 22
        conv(16, 32, 3, 0),       # 5, rf 30
        conv(32, 16, 3, 0, order="bdr"),    # 3, rf 38
        nn.Conv2d(16, 10, 3),     # 1, rf 46
        *head(),
    ]


def writeup001(dropout: float) -> list[nn.Module]:
    """Write-up 001, 'under 10k', 9,736 params: 1-channel 1x1 bottlenecks, each followed by Dropout2d."""
    conv = functools.partial(block, dropout=dropout, order="rbd", drop2d=True)
    return [
        conv(1, 10, 3, 1),        # 28, rf 3
        conv(10, 16, 3, 1),       # 28, rf 5
        conv(16, 16, 3, 1),       # 28, rf 7
        nn.MaxPool2d(2),          # 14, rf 8
        conv(16, 1, 1, 0),        # 14, rf 8   one channel: Dropout2d may blank it whole
        conv(1, 10, 3, 1),        # 14, rf 12
        conv(10, 16, 3, 1),       # 14, rf 16
        nn.MaxPool2d(2),          # 7, rf 18
        conv(16, 1, 1, 0),        # 7, rf 18
        conv(1, 10, 3, 0),        # 5, rf 26
        conv(10, 16, 3, 0),       # 3, rf 34
        conv(16, 16, 3, 0),       # 1, rf 42
        nn.Conv2d(16, 10, 1),     # 1
        *head(),
    ]


def _writeup002(dropout: float, transition_1x1: bool) -> list[nn.Module]:
    conv = functools.partial(block, dropout=dropout, order="rbd", bias=False, drop2d=True)
    first = ([nn.Conv2d(8, 12, 1, bias=False), conv(12, 12, 3, 0)] if transition_1x1
             else [conv(8, 12, 3, 0)])
    return [
        conv(1, 8, 3, 1),         # 28, rf 3
        conv(8, 8, 3, 1),         # 28, rf 5
        conv(8, 8, 3, 1),         # 28, rf 7
        nn.MaxPool2d(2),          # 14, rf 8
        *first,                   # 12, rf 12
        conv(12, 12, 3, 0),       # 10, rf 16
        conv(12, 12, 3, 0),       # 8, rf 20
        conv(12, 12, 3, 0),       # 6, rf 24
        conv(12, 12, 3, 0),       # 4, rf 28
        nn.AdaptiveAvgPool2d(1),  # 1
        nn.Conv2d(12, 10, 1, bias=False),
        *head(),
    ]


def writeup002_it1(dropout: float) -> list[nn.Module]:
    """Write-up 002, iterations 1 and 2, 8,088 params: 1x1 transition, 5 convs, GAP."""
    return _writeup002(dropout, transition_1x1=True)


def writeup002_it3(dropout: float) -> list[nn.Module]:
    """Write-up 002, iteration 3, 7,560 params: iteration 1 without the 1x1."""
    return _writeup002(dropout, transition_1x1=False)


def _writeup003_plain(widths: tuple[int, ...], order: str, dropout: float) -> list[nn.Module]:
    """Write-up 003, steps 1-2b: four 'same' convs, MP, two more, MP, 3x3 to 10, AvgPool."""
    conv = functools.partial(block, dropout=dropout, order=order)
    c1, c2, c3, c4, c5 = widths
    return [
        conv(1, c1, 3, 1),        # 28, rf 3
        conv(c1, c2, 3, 1),       # 28, rf 5
        conv(c2, c3, 3, 1),       # 28, rf 7
        conv(c3, c4, 3, 1),       # 28, rf 9
        nn.MaxPool2d(2),          # 14, rf 10
        conv(c4, c5, 3, 1),       # 14, rf 14
        conv(c5, c5, 3, 1),       # 14, rf 18
        nn.MaxPool2d(2),          # 7, rf 20
        nn.Conv2d(c5, 10, 3),     # 5, rf 28
        nn.AvgPool2d(5, 2),       # 1, rf 44
        *head(),
    ]


def writeup003_skeleton(dropout: float) -> list[nn.Module]:
    """Write-up 003, step 1, 257,354 params: plain conv-ReLU, no BN, no dropout."""
    return _writeup003_plain((8, 16, 32, 64, 128), "rd", dropout)


def writeup003_bn(dropout: float) -> list[nn.Module]:
    """Write-up 003, steps 2a (dropout 0) and 2b, 19,942 params: thinner, BN (and dropout)."""
    return _writeup003_plain((4, 8, 12, 16, 32), "rbd", dropout)


def writeup003_gap(dropout: float) -> list[nn.Module]:
    """Write-up 003, steps 2c and 3, 7,216 params: 1x1 transition, AvgPool, 1x1 classifier."""
    conv = functools.partial(block, dropout=dropout, order="rbd")
    return [
        conv(1, 8, 3, 1),         # 28, rf 3
        conv(8, 12, 3, 1),        # 28, rf 5
        nn.Conv2d(12, 6, 1),      # 28, rf 5
        nn.MaxPool2d(2),          # 14, rf 6
        conv(6, 12, 3, 0),        # 12, rf 10
        conv(12, 12, 3, 0),       # 10, rf 14
        conv(12, 12, 3, 1),       # 10, rf 18
        nn.MaxPool2d(2),          # 5, rf 20
        conv(12, 12, 3, 0),       # 3, rf 28
        conv(12, 12, 3, 1),       # 3, rf 36
        nn.AvgPool2d(3, 2),       # 1, rf 44
        nn.Conv2d(12, 10, 1),     # 1
        *head(),
    ]


def _ours(widths: tuple[int, ...], dropout: float, separable: int = 0) -> list[nn.Module]:
    """This project's own: three valid 3x3 convs at full resolution (where an extra channel is
    cheapest), one max-pool, a 1x1 squeeze, three more 3x3 convs, GAP and a 1x1 classifier.
    conv-BN-ReLU(-dropout) throughout; no conv biases (BatchNorm right after makes them moot).
    `separable`: the last N of the five 3x3 convs after the first are depthwise 3x3 + 1x1."""
    conv = functools.partial(block, dropout=dropout, order="brd", bias=False)

    def conv3(cin: int, cout: int, pad: int, index: int) -> nn.Sequential:
        if index < 5 - separable:
            return conv(cin, cout, 3, pad)
        return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=pad, groups=cin, bias=False),
                             *conv(cin, cout, 1, 0))

    c1, c2, c3, c4, c5, c6, c7 = widths
    return [
        conv(1, c1, 3, 0),        # 26, rf 3
        conv3(c1, c2, 0, 0),      # 24, rf 5
        conv3(c2, c3, 0, 1),      # 22, rf 7
        nn.MaxPool2d(2),          # 11, rf 8
        conv(c3, c4, 1, 0),       # 11, rf 8
        conv3(c4, c5, 0, 2),      # 9, rf 12
        conv3(c5, c6, 0, 3),      # 7, rf 16
        conv3(c6, c7, 1, 4),      # 7, rf 20
        nn.AdaptiveAvgPool2d(1),  # 1
        nn.Conv2d(c7, 10, 1),     # 1
        *head(),
    ]


def ours_wide(dropout: float) -> list[nn.Module]:
    """This project's own, wide, 7,776 params."""
    return _ours((10, 12, 14, 10, 12, 14, 16), dropout)


def parse_widths(text: str) -> tuple[int, ...]:
    """'8-10-12-8-12-14-14' -> the seven channel counts of the `ours` family."""
    return tuple(int(w) for w in text.split("-"))


ARCHITECTURES: dict[str, Callable[[float], list[nn.Module]]] = {
    "writeup004": writeup004,
    "writeup000": writeup000,
    "writeup001": writeup001,
    "writeup002_it1": writeup002_it1,
    "writeup002_it3": writeup002_it3,
    "writeup003_skeleton": writeup003_skeleton,
    "writeup003_bn": writeup003_bn,
    "writeup003_gap": writeup003_gap,
    "ours_wide": ours_wide,
}
FAMILY = "ours"  # the parameterized family: channels from the recipe's `widths` and `separable`
ARCH_NAMES = (*ARCHITECTURES, FAMILY)


def build_model(arch: str, dropout: float = 0.0, mean: float = MNIST_MEAN,
                std: float = MNIST_STD, widths: str | None = None,
                separable: int | None = None) -> nn.Sequential:
    if arch not in ARCH_NAMES:
        raise UserError(f"unknown architecture {arch!r}; registered: {', '.join(ARCH_NAMES)}")
    if arch == FAMILY:
        layers = _ours(parse_widths(widths), dropout, separable or 0)
    else:
        layers = ARCHITECTURES[arch](dropout)
    return nn.Sequential(Normalize(mean, std), *layers)


def model_for(recipe, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> nn.Sequential:
    """The recipe's network, untrained (weights from the current torch seed)."""
    return build_model(recipe.arch, recipe.dropout, mean, std, recipe.widths, recipe.separable)


def count_params(model: nn.Module) -> int:
    return sum(w.numel() for w in model.parameters() if w.requires_grad)
