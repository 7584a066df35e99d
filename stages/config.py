"""params.yaml: the one loader and validator every stage uses.

A variant's *recipe* is the top-level defaults overridden by its own entry under `variants:`.
Everything is checked before any work starts; a bad value raises `ParamsError` with one line
naming the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from stages.errors import ParamsError

PARAMS_FILE = Path("params.yaml")

# name -> (type, check, what is allowed). One row per recipe key; the order is the Recipe's.
Check = Callable[[Any], bool]
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
SCHEDULERS = ("none", "step", "plateau", "onecycle")
OPTIMIZERS = ("sgd", "adam")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
SPEC: dict[str, tuple[type, Check, str]] = {
    "seed": (int, lambda v: v >= 0, "an integer >= 0"),
    "seeds": (int, lambda v: 1 <= v <= 100, "an integer in [1, 100] (runs: seed, seed+1, ...)"),
    "epochs": (int, lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (int, lambda v: v >= 1, "an integer >= 1"),
    "train_subset": (int, lambda v: v >= 0, "an integer >= 0 (0 = all 60,000 images)"),
    "optimizer": (str, lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (float, lambda v: v > 0, "a number > 0"),
    "momentum": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (float, lambda v: v >= 0, "a number >= 0"),
    "scheduler": (str, lambda v: v in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
    "step": (int, lambda v: v >= 1, "an integer >= 1 (epochs)"),
    "gamma": (float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "step_start": (int, lambda v: v >= 1, "an integer >= 1 (epoch, 1-based)"),
    "patience": (int, lambda v: v >= 0, "an integer >= 0 (epochs)"),
    "factor": (float, lambda v: 0 < v < 1, "a number in (0, 1)"),
    "plateau_on": (str, lambda v: v in ("val", "test"), "one of val, test"),
    "val_size": (int, lambda v: 1 <= v < 60000, "an integer in [1, 60000)"),
    "max_lr": (float, lambda v: v > 0, "a number > 0"),
    "dropout": (float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "rotation": (float, lambda v: 0 <= v <= 180, "a number of degrees in [0, 180]"),
    "scale": (float, lambda v: 0 <= v < 1, "a number in [0, 1) (zoom in [1 - scale, 1 + scale])"),
    "translate": (float, lambda v: 0 <= v <= 0.5, "a fraction of the image side in [0, 0.5]"),
    "fill": (float, lambda v: 0 <= v <= 255, "a pixel value in [0, 255]"),
    "device": (str, lambda v: bool(_DEVICE_RE.match(v)), "one of auto, cpu, cuda, cuda:N, mps"),
    "compile": (str, lambda v: v in COMPILE_MODES, f"one of {', '.join(COMPILE_MODES)}"),
    "amp": (bool, lambda v: True, "true or false"),
}
MOVES = ("rotation", "scale", "translate")  # the augmentation's random moves; all 0 = none


def augments(r: Mapping[str, Any]) -> bool:
    """Whether a recipe (as a mapping) moves its training images at all."""
    return any(r[k] > 0 for k in MOVES)


# Keys that only matter under some settings; a recipe leaves them out (None) otherwise, so that
# changing e.g. `gamma` re-trains only the variants that use a step schedule. One-cycle sets lr
# and momentum itself (from max_lr / 25, momentum cycled 0.95 -> 0.85), so it drops both.
RELEVANT: dict[str, Callable[[dict], bool]] = {
    "lr": lambda r: r["scheduler"] != "onecycle",
    "momentum": lambda r: r["optimizer"] == "sgd" and r["scheduler"] != "onecycle",
    "step": lambda r: r["scheduler"] == "step",
    "gamma": lambda r: r["scheduler"] == "step",
    "step_start": lambda r: r["scheduler"] == "step",
    "patience": lambda r: r["scheduler"] == "plateau",
    "factor": lambda r: r["scheduler"] == "plateau",
    "plateau_on": lambda r: r["scheduler"] == "plateau",
    "val_size": lambda r: r["scheduler"] == "plateau" and r["plateau_on"] == "val",
    "max_lr": lambda r: r["scheduler"] == "onecycle",
    "fill": augments,
}
VARIANT_ONLY = {"arch", "source", "reported"}  # keys a variant entry may add to the recipe keys
TOP_ONLY = {"data", "variants"}


@dataclass(frozen=True)
class Recipe:
    """The resolved training recipe of one variant; keys that do not apply are None."""

    arch: str
    seed: int
    seeds: int
    epochs: int
    batch_size: int
    train_subset: int
    optimizer: str
    lr: float | None
    momentum: float | None
    weight_decay: float
    scheduler: str
    step: int | None
    gamma: float | None
    step_start: int | None
    patience: int | None
    factor: float | None
    plateau_on: str | None
    val_size: int | None
    max_lr: float | None
    dropout: float
    rotation: float
    scale: float
    translate: float
    fill: float | None
    device: str
    compile: str
    amp: bool

    @property
    def augments(self) -> bool:
        return augments(vars(self))

    def to_dict(self) -> dict[str, Any]:
        """The keys that shape training, without those that do not apply."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def make_recipe(values: dict[str, Any], where: str = "") -> Recipe:
    """Build a Recipe from a full or `to_dict()`-pruned mapping, validating every value."""
    _unknown(where, set(values), set(SPEC) | {"arch"})
    arch = values.get("arch")
    if not isinstance(arch, str):
        raise ParamsError(f"{where}arch = {arch!r}: must name a registered architecture")
    checked = {k: _check_value(where, k, v) for k, v in values.items() if k in SPEC}
    for key in SPEC:
        if key not in checked and key not in RELEVANT:
            raise ParamsError(f"{where}{key}: missing")
    full = {**{k: None for k in SPEC}, **checked}
    kept = {k: (v if k not in RELEVANT or RELEVANT[k](full) else None) for k, v in full.items()}
    missing = [k for k, v in kept.items() if v is None and k in RELEVANT and RELEVANT[k](full)]
    if missing:
        raise ParamsError(f"{where}{missing[0]}: missing")
    return Recipe(arch=arch, **kept)


@dataclass(frozen=True)
class Variant:
    name: str
    recipe: Recipe
    source: str  # which seed write-up it reproduces ("" for the project's own)
    reported: float | None  # the accuracy (%) the write-up reports, if any


@dataclass(frozen=True)
class Params:
    mirrors: tuple[str, ...]
    variants: dict[str, Variant]

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise ParamsError(
                f"unknown variant {name!r}; params.yaml defines: {', '.join(self.variants)}"
            )
        return self.variants[name]


def _check_value(where: str, key: str, value: Any) -> Any:
    typ, ok, allowed = SPEC[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    is_type = isinstance(value, typ) and (typ is bool or not isinstance(value, bool))
    if not is_type or not ok(value):
        raise ParamsError(f"{where}{key} = {value!r}: must be {allowed}")
    return value


def _unknown(where: str, keys: set[str], allowed: set[str]) -> None:
    bad = sorted(str(k) for k in keys - allowed)
    if bad:
        close = difflib.get_close_matches(bad[0], allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParamsError(
            f"{where}{bad[0]}: unknown key; {hint}allowed: {', '.join(sorted(allowed))}"
        )


def resolve_variant(name: str, entry: Any, defaults: dict[str, Any]) -> Variant:
    from stages.models import ARCHITECTURES  # the registry; imported late to keep config light

    where = f"variants.{name}."
    if not isinstance(entry, dict):
        raise ParamsError(f"variants.{name} = {entry!r}: must be a mapping with at least 'arch'")
    _unknown(where, set(entry), set(SPEC) | VARIANT_ONLY)
    arch = entry.get("arch")
    if arch not in ARCHITECTURES:
        raise ParamsError(
            f"{where}arch = {arch!r}: unknown architecture; registered: {', '.join(ARCHITECTURES)}"
        )
    values = {k: v for k, v in entry.items() if k in SPEC}
    recipe = make_recipe({"arch": arch, **defaults, **values}, where)
    reported = entry.get("reported")
    if reported is not None and not (isinstance(reported, (int, float)) and 0 < reported <= 100):
        raise ParamsError(f"{where}reported = {reported!r}: must be a percentage in (0, 100]")
    source = entry.get("source", "")
    if not isinstance(source, str):
        raise ParamsError(f"{where}source = {source!r}: must be a string")
    return Variant(name, recipe, source, None if reported is None else float(reported))


def parse_params(raw: Any) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: must be a mapping of keys to values")
    _unknown("", set(raw), set(SPEC) | TOP_ONLY)
    missing = [k for k in SPEC if k not in raw]
    if missing:
        raise ParamsError(f"{missing[0]}: missing top-level default; every recipe key needs one")
    defaults = {k: _check_value("", k, raw[k]) for k in SPEC}
    data = raw.get("data") or {}
    mirrors = data.get("mirrors") if isinstance(data, dict) else None
    if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
        raise ParamsError(f"data.mirrors = {mirrors!r}: must be a list of URLs or directories")
    _unknown("data.", set(data), {"mirrors"})
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ParamsError("variants: must map each variant name to its entry (at least one)")
    for name in variants:
        if not re.match(r"^[A-Za-z0-9_-]+$", str(name)):
            raise ParamsError(f"variants.{name}: names may use letters, digits, '_' and '-' only")
    resolved = {str(n): resolve_variant(str(n), e, defaults) for n, e in variants.items()}
    return Params(tuple(mirrors), resolved)


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ParamsError(f"{path}: cannot read ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    return parse_params(raw)
