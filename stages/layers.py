"""Layer table of a network: output shape, parameters, receptive field and jump per layer,
computed from the model itself (the write-ups worked these out by hand in comments)."""
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
