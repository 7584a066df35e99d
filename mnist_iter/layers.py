"""What the evaluate stage shows of a network: its layer table (output shape, parameters,
receptive field and jump per layer, computed from the model itself), per-class accuracy and
its mistakes."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

SIDE = 28


def _pair(v) -> int:
    return v[0] if isinstance(v, tuple) else v


def describe(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        k, p = _pair(m.kernel_size), _pair(m.padding)
        bias = "" if m.bias is not None else ", no bias"
        return f"Conv2d {m.in_channels}→{m.out_channels} {k}x{k} pad {p}{bias}"
    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        return f"{type(m).__name__} {_pair(m.kernel_size)}/{_pair(m.stride)}"
    if isinstance(m, (nn.Dropout, nn.Dropout2d)):
        return f"{type(m).__name__}({m.p:g})"
    return type(m).__name__


def layer_table(model: nn.Module, side: int = SIDE) -> pd.DataFrame:
    """One row per leaf layer: name, layer, output shape (C, H, W), parameters, receptive field
    (input pixels one output pixel sees, per side) and jump (input pixels between neighbours)."""
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    shapes: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(
        lambda mod, inp, out, name=n: shapes.__setitem__(name, (tuple(inp[0].shape[1:]),
                                                                tuple(out.shape[1:]))))
        for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, side, side))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rf, jump, rows = 1, 1, []
    for name, m in leaves:
        in_shape, out_shape = shapes[name]
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _pair(m.kernel_size), _pair(m.stride)
            d = _pair(getattr(m, "dilation", 1))
            rf, jump = rf + (k - 1) * d * jump, jump * s
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and len(in_shape) == 3:
            k = in_shape[-1] - out_shape[-1] + 1  # a 1x1 output sees the whole input map
            rf, jump = rf + (k - 1) * jump, jump * k
        rows.append({
            "name": name,
            "layer": describe(m),
            "output": "x".join(map(str, out_shape)),
            "params": sum(p.numel() for p in m.parameters()),
            "rf": rf,
            "jump": jump,
        })
    return pd.DataFrame(rows)


MISTAKES_SHOWN = 48  # digits in the grid, in test-set order
GRID_COLUMNS = 12


def per_class_accuracy(labels: torch.Tensor, preds: torch.Tensor) -> dict[str, float]:
    return {str(c): round((preds[labels == c] == c).double().mean().item() * 100, 2)
            for c in range(10)}


def plot_mistakes(images: torch.Tensor, labels: torch.Tensor, preds: torch.Tensor, out,
                  path) -> None:
    """A grid of the first misclassified test digits, labelled true→predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = (preds != labels).nonzero().flatten()[:MISTAKES_SHOWN]
    rows = max(1, -(-len(wrong) // GRID_COLUMNS))
    fig, axes = plt.subplots(rows, GRID_COLUMNS, figsize=(GRID_COLUMNS * 0.9, rows * 1.05),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"{labels[i].item()}→{preds[i].item()}", fontsize=9, color="firebrick")
    fig.suptitle(f"{int((preds != labels).sum())} misclassified test digits "
                 f"(first {len(wrong)}; true→predicted)", fontsize=10)
    out.figure(path, fig, dpi=80)
