"""Batched augmentation on the device: one affine_grid + grid_sample moves every image of a batch
by its own random rotation, zoom and shift (torchvision's geometry, tested against it)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine(x: torch.Tensor, degrees: torch.Tensor, fill: float = 0.0, *,
           scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
           mode: str = "nearest") -> torch.Tensor:
    """Rotate each image of x (B, C, H, W) counter-clockwise by its own angle in degrees about
    the image centre, optionally zoom it by its own `scale` factor (B,) and move it by `shift`
    (B, 2: x right, y down, in fractions of the image side), in one grid_sample: the geometry of
    torchvision.transforms.functional.rotate / affine. `fill` (the scale of x) is used for
    pixels that come from outside the image."""
    rad = degrees.to(x.dtype) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # output pixel -> input pixel, in grid_sample's normalized coordinates (y points down)
    inverse = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    if scale is not None:
        inverse = inverse / scale.to(x.dtype)[:, None, None]
    offset = torch.zeros_like(inverse[:, :, :1])
    if shift is not None:  # a side is 2 normalized units; input = inverse @ (output - 2 * shift)
        offset = -inverse @ (2 * shift.to(x.dtype)[:, :, None])
    grid = F.affine_grid(torch.cat([inverse, offset], 2), list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False) + fill


def draw_moves(count: int, recipe, gen: torch.Generator, device: torch.device) -> tuple:
    """The recipe's random moves of `count` images, drawn from `gen` in a fixed order (angles,
    zooms, shifts): degrees (count,), zoom factors (count,) or None, shifts (count, 2) or None."""
    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=gen) * 2 - 1

    angles = uniform(count) * recipe.rotation if recipe.rotation else torch.zeros(count, device=device)
    scale = 1 + uniform(count) * recipe.scale if recipe.scale else None
    shift = uniform(count, 2) * recipe.translate if recipe.translate else None
    return angles, scale, shift


def augment(x: torch.Tensor, recipe, gen: torch.Generator) -> torch.Tensor:
    """The recipe's random rotation, zoom and shift, each image its own, uniform in
    [-rotation, rotation] degrees, [1 - scale, 1 + scale] and [-translate, translate] sides."""
    if not recipe.augments:
        return x
    angles, scale, shift = draw_moves(len(x), recipe, gen, x.device)
    return affine(x, angles, recipe.fill / 255, scale=scale, shift=shift)
