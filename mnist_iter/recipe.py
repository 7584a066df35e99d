"""The recipe schema and the params.yaml loader.

Each recipe key is declared once, in KEYS: its type, what values are allowed, what it means and
when it applies. The loader, the configure stage's pruning (keys that do not apply are left out
of a variant's resolved recipe, so changing them re-trains nothing) and the README's parameter
table all come from it. A bad value raises ParamsError with one line naming the key, the value
and what is allowed.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from mnist_iter import cpu_math
from mnist_iter.cli import ParamsError
from mnist_iter.models import ARCH_NAMES

PARAMS_FILE = Path("params.yaml")
SEARCH_PARAMS = Path("search/params.yaml")  # the selection candidates, `screen:`
SCHEDULERS = ("none", "step", "plateau", "onecycle")
OPTIMIZERS = ("sgd", "adam")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
MAX_SEED = 2**32  # seeds are drawn from [0, MAX_SEED): every RNG takes them
MOVES = ("rotation", "scale", "translate")  # the augmentation's random moves; all 0 = none
VARIANT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")  # a DVC stage key, an argv word


def augments(r: Mapping[str, Any]) -> bool:
    """Whether a recipe (as a mapping) moves its training images at all."""
    return any(r[k] > 0 for k in MOVES)


def _onecycle(r: Mapping) -> bool:
    return r["scheduler"] == "onecycle"


def _family(r: Mapping) -> bool:
    return r["arch"] == "ours"


INTEGER = re.compile(r"[+-]?[0-9]+")
WIDTHS = re.compile(r"([1-9][0-9]?)(-[1-9][0-9]?){6}")  # seven channel counts, 1-99


@dataclass(frozen=True)
class Key:
    name: str
    kind: type  # int, float, str or bool
    allowed: str  # the allowed values, in words
    ok: Callable[[Any], bool]
    meaning: str
    applies: Callable[[Mapping], bool] | None = None  # None: always shapes training
    when: str = ""  # `applies` in words
    before: Any = None  # its value in a recipe written before the key existed (a checkpoint)


KEYS: tuple[Key, ...] = (
    Key("widths", str, "seven channel counts 1-99 joined by '-', e.g. 8-10-12-8-12-14-14",
        lambda v: WIDTHS.fullmatch(v) is not None,
        "channels of the ours family's seven convs: three 3x3 at full resolution, max-pool, "
        "a 1x1 squeeze, three 3x3", _family, "arch is ours"),
    Key("separable", int, "an integer in [0, 5]", lambda v: 0 <= v <= 5,
        "how many of the last five 3x3 convs are depthwise 3x3 + 1x1 (fewer parameters)",
        _family, "arch is ours"),
    Key("seed", int, "an integer in [0, 2**32)", lambda v: 0 <= v < MAX_SEED,
        "seeds weight init, shuffling, dropout and augmentation"),
    Key("seeds", int, "an integer in [1, 100]", lambda v: 1 <= v <= 100,
        "independent runs with seeds seed, seed+1, ...; reports give mean ± sd"),
    Key("threads", int, "an integer in [1, 64]", lambda v: 1 <= v <= 64,
        "CPU threads of one run; the numbers depend on it, so it is part of the recipe"),
    Key("epochs", int, "an integer in [1, 1000]", lambda v: 1 <= v <= 1000,
        "passes over the training images"),
    Key("batch_size", int, "an integer in [1, 60000]", lambda v: 1 <= v <= 60000,
        "images per SGD step"),
    Key("train_subset", int, "an integer in [0, 60000] (0 = all)", lambda v: 0 <= v <= 60000,
        "train on the first N training images only; 0 = all 60,000"),
    Key("val_size", int, "an integer in [0, 30000]", lambda v: 0 <= v <= 30000,
        "training images held out (the last N) for validation; 0 = none"),
    Key("optimizer", str, f"one of {', '.join(OPTIMIZERS)}", lambda v: v in OPTIMIZERS,
        "sgd | adam"),
    Key("lr", float, "a number > 0", lambda v: v > 0, "learning rate (initial, for a schedule)",
        lambda r: not _onecycle(r), "not with onecycle, which sets its own"),
    Key("momentum", float, "a number in [0, 1)", lambda v: 0 <= v < 1, "SGD momentum",
        lambda r: r["optimizer"] == "sgd" and not _onecycle(r), "sgd, not with onecycle"),
    Key("weight_decay", float, "a number >= 0", lambda v: v >= 0, "L2 penalty"),
    Key("label_smoothing", float, "a number in [0, 1)", lambda v: 0 <= v < 1,
        "share of the target spread over all classes; 0 = plain NLL"),
    Key("scheduler", str, f"one of {', '.join(SCHEDULERS)}", lambda v: v in SCHEDULERS,
        "none | step | plateau | onecycle"),
    Key("step", int, "an integer >= 1 (epochs)", lambda v: v >= 1,
        "epochs between two decays (StepLR step_size)", lambda r: r["scheduler"] == "step", "step"),
    Key("gamma", float, "a number in (0, 1]", lambda v: 0 < v <= 1, "lr factor at each decay",
        lambda r: r["scheduler"] == "step", "step"),
    Key("step_start", int, "an integer >= 1 (epoch, 1-based)", lambda v: v >= 1,
        "first epoch counted toward the decays", lambda r: r["scheduler"] == "step", "step"),
    Key("patience", int, "an integer >= 0 (epochs)", lambda v: v >= 0,
        "epochs without improvement before a decay", lambda r: r["scheduler"] == "plateau",
        "plateau"),
    Key("factor", float, "a number in (0, 1)", lambda v: 0 < v < 1, "lr factor at each decay",
        lambda r: r["scheduler"] == "plateau", "plateau"),
    Key("plateau_on", str, "one of val, test", lambda v: v in ("val", "test"),
        "the loss a plateau schedule watches (val needs val_size > 0)",
        lambda r: r["scheduler"] == "plateau", "plateau"),
    Key("max_lr", float, "a number > 0", lambda v: v > 0, "peak learning rate",
        _onecycle, "onecycle"),
    Key("ema", float, "a number in [0, 1)", lambda v: 0 <= v < 1,
        "decay of a running average of the weights, updated every step; the per-epoch numbers "
        "and the checkpoint use the average; 0 = off"),
    Key("dropout", float, "a number in [0, 1)", lambda v: 0 <= v < 1,
        "dropout probability at the architecture's dropout layers"),
    Key("rotation", float, "a number of degrees in [0, 180]", lambda v: 0 <= v <= 180,
        "augmentation: max rotation, degrees, uniform in [-r, r]; 0 = off"),
    Key("scale", float, "a number in [0, 1)", lambda v: 0 <= v < 1,
        "augmentation: max zoom, each image in [1 - s, 1 + s]; 0 = off"),
    Key("translate", float, "a fraction of the side in [0, 0.5]", lambda v: 0 <= v <= 0.5,
        "augmentation: max shift, fraction of the side, x and y; 0 = off"),
    Key("fill", float, "a pixel value in [0, 255]", lambda v: 0 <= v <= 255,
        "value of pixels moved in from outside the image, 0-255 scale", augments,
        "an augmentation is on"),
    Key("device", str, "one of auto, cpu, cuda, cuda:N, mps",
        lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,2})?", v) is not None,
        "auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps"),
    Key("compile", str, f"one of {', '.join(COMPILE_MODES)}", lambda v: v in COMPILE_MODES,
        "torch.compile mode; none = eager"),
    Key("amp", bool, "true or false", lambda v: True,
        "bf16 autocast on CUDA, and on CPUs with native bf16 (AMX) under cpu_math native; "
        "fp32 elsewhere"),
    Key("cpu_math", str, f"one of {', '.join(cpu_math.MODES)}", lambda v: v in cpu_math.MODES,
        "portable: x86 instruction sets pinned to AVX2, the same bits on every x86-64 CPU; "
        "native: what the CPU has (AVX-512, AMX), other bits on another CPU model",
        before="native"),
)
SPEC = {k.name: k for k in KEYS}
VARIANT_ONLY = ("arch", "writeup", "reported", "improves_on", "extends")  # a variant's own keys
NOT_INHERITED = ("writeup", "reported", "improves_on", "extends")  # what `extends` leaves behind


def _to_dict(self) -> dict[str, Any]:
    """The keys that shape training, without those that do not apply: configs/<v>.json."""
    return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


# The resolved recipe of one variant: `arch` plus every key of KEYS, those that do not apply None.
Recipe = dataclasses.make_dataclass(
    "Recipe", [("arch", str)] + [(k.name, k.kind | None) for k in KEYS], frozen=True,
    namespace={"__module__": __name__, "to_dict": _to_dict,
               "augments": property(lambda self: augments(vars(self)))})


def check_value(where: str, key: str, value: Any) -> Any:
    """The value as its key's type, or ParamsError. A number may come as a string, for every
    numeric key alike (YAML 1.1 reads 1e-3 as one, and `-S` may quote), but must be finite."""
    spec = SPEC[key]
    if isinstance(value, Yaml11):
        written = "true or false" if spec.kind is bool else f"a plain number ({spec.allowed})" \
            if spec.kind in (int, float) else "it in quotes"
        raise ParamsError(f"{where}{key} = {str(value)!r}: YAML 1.1 reads this as "
                          f"{value.reads!r}, YAML 1.2 (DVC) otherwise; write {written}")
    if spec.kind in (int, float) and isinstance(value, str):  # the same for every numeric key
        text = value.strip().replace("_", "")
        try:
            value = float(text) if spec.kind is float else int(text) if INTEGER.fullmatch(text) \
                else value
        except ValueError:
            pass
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    right_type = isinstance(value, spec.kind) and (spec.kind is bool or not isinstance(value, bool))
    if right_type and spec.kind is float and not math.isfinite(value):
        right_type = False
    if not right_type or not spec.ok(value):
        raise ParamsError(f"{where}{key} = {value!r}: must be {spec.allowed}")
    return value


def make_recipe(values: Mapping[str, Any], where: str = "") -> Recipe:
    """A Recipe from a full or to_dict()-pruned mapping, validating every value."""
    unknown_keys(where, set(values), set(SPEC) | {"arch"})
    values = {k.name: k.before for k in KEYS if k.before is not None} | dict(values)
    arch = values.get("arch")
    if not isinstance(arch, str):
        raise ParamsError(f"{where}arch = {arch!r}: must name a registered architecture")
    full = {"arch": arch, **{k: check_value(where, k, values[k]) for k in SPEC if k in values}}
    always = [k.name for k in KEYS if k.applies is None and k.name not in full]
    if always:
        raise ParamsError(f"{where}{always[0]}: missing")
    kept = {}
    for key in KEYS:
        if key.applies is None or key.applies(full):
            if key.name not in full:
                raise ParamsError(f"{where}{key.name}: missing (needed when {key.when})")
            kept[key.name] = full[key.name]
        else:
            kept[key.name] = None
    if kept["seed"] + kept["seeds"] > MAX_SEED:
        raise ParamsError(f"{where}seed + seeds = {kept['seed'] + kept['seeds']}: the seeds "
                          f"must stay below 2**32")
    if kept["plateau_on"] == "val" and kept["val_size"] == 0:
        raise ParamsError(f"{where}val_size = 0: a plateau schedule on val needs val_size > 0")
    return Recipe(arch=arch, **kept)


@dataclass(frozen=True)
class Variant:
    name: str
    recipe: Recipe
    writeup: str  # the course write-up it reproduces ("" for the project's own)
    reported: float | None  # the accuracy (%) the write-up reports, if any
    improves_on: str | None = None  # the variant this one is a step from (for the verdicts)


@dataclass(frozen=True)
class Params:
    mirrors: tuple[str, ...]
    variants: dict[str, Variant]
    screen: dict[str, Variant] = dataclasses.field(default_factory=dict)  # selection candidates

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise ParamsError(
                f"unknown variant {name!r}; params.yaml defines: {', '.join(self.variants)}")
        return self.variants[name]

    def candidate(self, name: str) -> Variant:
        if name not in self.screen:
            raise ParamsError(f"unknown screen candidate {name!r}; {SEARCH_PARAMS} defines: "
                              f"{', '.join(self.screen) or 'none'}")
        return self.screen[name]


def unknown_keys(where: str, keys: set, allowed: set[str]) -> None:
    bad = sorted(str(k) for k in keys - allowed)
    if bad:
        close = difflib.get_close_matches(bad[0], allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ParamsError(
            f"{where}{bad[0]}: unknown key; {hint}allowed: {', '.join(sorted(allowed))}")


def check_variant_name(name: Any, section: str = "variants") -> str:
    if not (isinstance(name, str) and VARIANT_NAME.fullmatch(name)):
        kind = "variant" if section == "variants" else "candidate"
        raise ParamsError(f"{section}.{name!r}: a {kind} name is a letter, then up to 31 letters, "
                          "digits or '_' (it becomes a DVC stage name and a command argument)")
    return name


def resolve_variant(name: str, entry: Any, defaults: dict[str, Any],
                    section: str = "variants") -> Variant:
    where = f"{section}.{name}."
    if not isinstance(entry, dict):
        raise ParamsError(f"{section}.{name} = {entry!r}: must be a mapping with at least 'arch'")
    unknown_keys(where, set(entry), set(SPEC) | set(VARIANT_ONLY))
    arch = entry.get("arch")
    if arch not in ARCH_NAMES:
        raise ParamsError(f"{where}arch = {arch!r}: unknown architecture; "
                          f"registered: {', '.join(ARCH_NAMES)}")
    recipe = make_recipe({"arch": arch, **defaults, **{k: v for k, v in entry.items() if k in SPEC}},
                         where)
    reported = entry.get("reported")
    if reported is not None and not (isinstance(reported, (int, float))
                                     and not isinstance(reported, bool) and 0 < reported <= 100):
        raise ParamsError(f"{where}reported = {reported!r}: must be a percentage in (0, 100]")
    writeup = entry.get("writeup", "")
    if not isinstance(writeup, str):
        raise ParamsError(f"{where}writeup = {writeup!r}: must be a string")
    return Variant(name, recipe, writeup, None if reported is None else float(reported),
                   entry.get("improves_on"))


def expand_extends(section: str, entries: dict, pool: dict[str, dict]) -> dict[str, Any]:
    """Each entry with `extends: NAME` as NAME's entry (itself expanded) with this entry's keys
    on top; the parent's writeup, reported and improves_on stay with the parent. `pool` is where
    NAME may be: the variants, and for a screen candidate also the other candidates."""
    def expand(name: str, chain: tuple[str, ...]) -> Any:
        entry = pool[name]
        if not isinstance(entry, dict) or "extends" not in entry:
            return entry
        parent = entry["extends"]
        where = f"{section if name in entries else 'variants'}.{name}.extends"
        if not isinstance(parent, str) or parent not in pool:
            raise ParamsError(f"{where} = {parent!r}: must name another entry "
                              f"({', '.join(n for n in pool if n != name)})")
        if parent in chain + (name,):
            raise ParamsError(f"{where} = {parent!r}: a cycle ({' -> '.join(chain + (name, parent))}); "
                              "an entry cannot extend itself")
        inherited = expand(parent, chain + (name,))
        if not isinstance(inherited, dict):
            return entry  # resolve_variant names what is wrong with the parent
        own = {k: v for k, v in inherited.items() if k not in NOT_INHERITED}
        return own | {k: v for k, v in entry.items() if k != "extends"}

    return {name: expand(name, ()) for name in entries}


def parse_params(raw: Any, search: bool = False) -> Params:
    """The root params.yaml as a mapping; `search`: with the candidates of search/params.yaml
    merged in under `screen:`."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: must be a mapping of keys to values")
    if "screen" in raw and not search:
        raise ParamsError(f"screen: the selection candidates live in {SEARCH_PARAMS}; move them "
                          "there")
    unknown_keys("", set(raw), set(SPEC) | {"data", "variants", "screen"})
    missing = [k.name for k in KEYS if k.name not in raw]
    if missing:
        raise ParamsError(f"{missing[0]}: missing top-level default; every recipe key needs one")
    defaults = {k: check_value("", k, raw[k]) for k in SPEC}
    data = raw.get("data") or {}
    mirrors = data.get("mirrors") if isinstance(data, dict) else None
    if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
        raise ParamsError(f"data.mirrors = {mirrors!r}: must be a list of URLs or directories")
    unknown_keys("data.", set(data), {"mirrors"})
    variants = raw.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ParamsError("variants: must map each variant name to its entry (at least one)")
    entries = expand_extends("variants", variants, variants)
    resolved = {check_variant_name(n): resolve_variant(n, e, defaults) for n, e in entries.items()}
    for variant in resolved.values():
        if variant.improves_on is not None and variant.improves_on not in resolved:
            raise ParamsError(f"variants.{variant.name}.improves_on = {variant.improves_on!r}: "
                              f"must name another variant ({', '.join(resolved)})")
    return Params(tuple(mirrors), resolved,
                  parse_screen(raw.get("screen") or {}, defaults, variants))


def parse_screen(entries: Any, defaults: dict[str, Any],
                 variants: dict[str, Any] | None = None) -> dict[str, Variant]:
    """The selection candidates: recipes measured on held-out training images only. A candidate
    may extend a variant or another candidate (a candidate's name wins)."""
    if not isinstance(entries, dict):
        raise ParamsError(f"screen = {entries!r}: must map each candidate name to its entry")
    entries = expand_extends("screen", entries, {**(variants or {}), **entries})
    screen = {}
    for name, entry in entries.items():
        candidate = resolve_variant(check_variant_name(name, "screen"), entry, defaults, "screen")
        recipe = candidate.recipe
        if recipe.val_size == 0:
            raise ParamsError(f"screen.{name}.val_size = 0: a candidate is measured on held-out "
                              "training images, never on the test set; set val_size > 0")
        if recipe.plateau_on == "test":
            raise ParamsError(f"screen.{name}.plateau_on = 'test': a candidate never reads the "
                              "test set; use val")
        screen[name] = candidate
    for candidate in screen.values():
        if candidate.improves_on is not None and candidate.improves_on not in screen:
            raise ParamsError(f"screen.{candidate.name}.improves_on = {candidate.improves_on!r}: "
                              f"must name another candidate ({', '.join(screen)})")
    return screen


# What YAML 1.1 (PyYAML) turns into another number or type than YAML 1.2 (DVC's ruamel) and the
# eye do: base 60 (1:30 -> 90), a leading zero (010 -> 8), binary, and yes/no/on/off as booleans
YAML11_NUMBER = re.compile(r"[-+]?(?:[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|0[0-7_]+|0b[01_]+)")
YAML11_BOOL = {"yes", "no", "on", "off"}


class Yaml11(str):
    """A scalar as written, where YAML 1.1 would read `reads` instead: refused where a value is
    checked (check_value), so that params are read as written."""
    reads: Any = None


def _as_written(text: str, reads: Any) -> Yaml11:
    value = Yaml11(text)
    value.reads = reads
    return value


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error, and a scalar that
    YAML 1.1 would turn into another number or type (Yaml11) stays as written. Anchors, aliases
    and merge keys (`<<: *defaults`) work as in PyYAML and DVC; a key written beside a merge
    overrides the merged one, as YAML says."""

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        return _as_written(node.value, value) if YAML11_NUMBER.fullmatch(node.value) else value

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        return _as_written(node.value, value) if YAML11_NUMBER.fullmatch(node.value) else value

    def construct_yaml_bool(self, node):
        value = super().construct_yaml_bool(node)
        return _as_written(node.value, value) if node.value.lower() in YAML11_BOOL else value

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(f"line {key_node.start_mark.line + 1}: key {key!r} is given "
                                  "twice in the same mapping; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


for _tag, _method in (("int", _StrictLoader.construct_yaml_int),
                      ("float", _StrictLoader.construct_yaml_float),
                      ("bool", _StrictLoader.construct_yaml_bool)):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)


def unchanged_since(*paths: Path | str) -> Callable[[], None]:
    """A check to call before writing what was resolved from `paths`: ParamsError if any of
    them changed meanwhile (an edit, or a second `dvc exp run -S` writing params.yaml while this
    run's stage ran; DVC records params in dvc.lock after the command, so it would record
    values the outputs were not made from)."""
    def digest() -> list[bytes | None]:
        return [Path(p).read_bytes() if Path(p).exists() else None for p in paths]

    before = digest()

    def check() -> None:
        changed = [str(p) for p, a, b in zip(paths, before, digest()) if a != b]
        if changed:
            raise ParamsError(f"{changed[0]} changed while this stage ran (an edit, or another "
                              "`dvc exp run -S` started meanwhile); nothing was written: run it "
                              "again once the file is as you want it")
    return check


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    return parse_params(read_yaml(path))


def load_search(path: Path | str = SEARCH_PARAMS, root: Path | str = PARAMS_FILE) -> Params:
    """The root's defaults (with search/params.yaml's `defaults:` on top) and variants, and the
    selection candidates of search/params.yaml (a candidate may extend a variant)."""
    raw, search = read_yaml(root), read_yaml(path)
    if not isinstance(search, dict):
        raise ParamsError(f"{path}: must be a mapping with the keys screen and defaults")
    unknown_keys(f"{path}: ", set(search), {"screen", "defaults"})
    defaults = search.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ParamsError(f"{path}: defaults = {defaults!r}: must map recipe keys to values")
    unknown_keys(f"{path}: defaults.", set(defaults), set(SPEC))
    if isinstance(raw, dict):
        raw = {**raw, **defaults, "screen": search.get("screen") or {}}
    return parse_params(raw, search=True)


def read_yaml(path: Path | str) -> Any:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ParamsError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ParamsError as e:
        raise ParamsError(f"{path} {e}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to read; a params file is a few levels "
                          "of mappings") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{line}") from None
    return raw


def params_table() -> str:
    """The README's parameter table, from KEYS."""
    rows = ["| key | allowed | meaning | applies |", "|---|---|---|---|"]
    rows += [f"| `{k.name}` | {k.allowed} | {k.meaning} | {k.when or 'always'} |" for k in KEYS]
    return "\n".join(rows)


def load_config(path: Path, name: str) -> Recipe:
    """The resolved recipe configure wrote (configs/<v>.json): what train and screen run, so the
    recipe flows one way, params.yaml -> configure -> configs -> train."""
    import json

    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in Path(path).parent.glob("*.json"))) or "none yet"
        raise ParamsError(f"unknown variant {name!r}: no {path} (configure wrote: {known}); "
                          "define it in params.yaml and run `dvc repro configure`") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ParamsError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e}); run "
                          "`dvc repro -f configure` to write it again") from None
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: not a recipe; run `dvc repro -f configure` to write it again")
    return make_recipe(values, where=f"{path}: ")
