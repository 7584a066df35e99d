"""params.yaml validation: every bad value stops with one line naming key, value and range."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, small_params
from mnist_iter.cli import ParamsError
from mnist_iter.recipe import KEYS, load_params, make_recipe, params_table, parse_params


def with_changes(top: dict | None = None, variant: dict | None = None) -> dict:
    raw = copy.deepcopy(small_params())
    raw.update(top or {})
    if variant:
        raw["variants"]["first"].update(variant)
    return raw


def test_project_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.variants and params.mirrors
    assert all(v.recipe.seeds >= 3 for v in params.variants.values())


@pytest.mark.parametrize("top, variant, needle", [
    ({"lr": 0}, None, "lr = 0.0: must be a number > 0"),
    ({"lr": -0.1}, None, "lr = -0.1"),
    (None, {"lr": "fast"}, "lr = 'fast'"),
    ({"lr": float("inf")}, None, "lr = inf: must be a number > 0"),
    ({"lr": float("nan")}, None, "lr = nan"),
    ({"dropout": 1.0}, None, "dropout = 1.0: must be a number in [0, 1)"),
    ({"rotation": -5}, None, "rotation = -5.0"),
    ({"epochs": 0}, None, "epochs = 0: must be an integer in [1, 1000]"),
    ({"epochs": 2.5}, None, "epochs = 2.5"),
    ({"seeds": 0}, None, "seeds = 0: must be an integer in [1, 100]"),
    ({"seed": 2**32}, None, "seed = 4294967296: must be an integer in [0, 2**32)"),
    ({"seed": 2**32 - 1, "seeds": 2}, None, "seed + seeds = 4294967297"),
    ({"batch_size": 0}, None, "batch_size = 0"),
    ({"amp": 1}, None, "amp = 1: must be true or false"),
    ({"scheduler": "cosine"}, None, "scheduler = 'cosine': must be one of none, step"),
    (None, {"scheduler": "plateau"}, "val_size = 0: a plateau schedule on val needs val_size > 0"),
    ({"device": "cuda:x"}, None, "device = 'cuda:x'"),
    (None, {"arch": "resnet50"}, "arch = 'resnet50': unknown architecture; registered: writeup004"),
    ({"gama": 0.2}, None, "gama: unknown key; did you mean 'gamma'?"),
    (None, {"rotaton": 7}, "rotaton: unknown key; did you mean 'rotation'?"),
    (None, {"improves_on": "nobody"}, "improves_on = 'nobody': must name another variant"),
    ({"variants": {}}, None, "variants"),
    ({"variants": {"-S": {"arch": "writeup004"}}}, None, "variants.'-S': a variant name is"),
    ({"variants": {"a\n": {"arch": "writeup004"}}}, None, "a variant name is a letter"),
    ({"variants": {"x@y": {"arch": "writeup004"}}}, None, "a variant name is a letter"),
    ({"variants": {True: {"arch": "writeup004"}}}, None, "variants.True: a variant name"),
    ({"data": {"mirrors": "http://x"}}, None, "data.mirrors"),
])
def test_rejected(top, variant, needle):
    with pytest.raises(ParamsError) as err:
        parse_params(with_changes(top, variant))
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, value", [("1e-3", 0.001), ("1E-3", 0.001), ("0.5", 0.5),
                                         ("1_000.0", 1000.0), ("3", 3.0)])
def test_numbers_as_people_write_them(tmp_path, text, value):
    raw = with_changes()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw).replace("lr: 0.04", f"lr: {text}"))
    assert load_params(tmp_path / "params.yaml").variant("first").recipe.lr == value


def test_a_key_given_twice_is_an_error(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes()) + "lr: 0.5\n")
    with pytest.raises(ParamsError, match=r"line \d+: key 'lr' is given twice"):
        load_params(tmp_path / "params.yaml")


def test_variant_overrides_and_inherits():
    raw = with_changes({"gamma": 0.33, "lr": 0.02})
    raw["variants"] = {"a": {"arch": "writeup002_it3"}, "b": {"arch": "writeup004", "lr": 0.5}}
    params = parse_params(raw, search=True)
    a, b = params.variants["a"].recipe, params.variants["b"].recipe
    assert (a.lr, a.gamma) == (0.02, 0.33) and b.lr == 0.5


def test_an_entry_extends_another():
    raw = with_changes()
    raw["variants"] = {
        "a": {"arch": "writeup004", "writeup": "004", "reported": 99.0, "lr": 0.5, "epochs": 3},
        "b": {"extends": "a", "improves_on": "a", "epochs": 4},
        "c": {"extends": "b", "arch": "writeup002_it3"},
    }
    raw["screen"] = {"s": {"extends": "c", "val_size": 100}, "t": {"extends": "s", "lr": 0.1}}
    params = parse_params(raw, search=True)
    b, c = params.variants["b"], params.variants["c"]
    assert (b.recipe.arch, b.recipe.lr, b.recipe.epochs) == ("writeup004", 0.5, 4)
    assert (b.writeup, b.reported, b.improves_on) == ("", None, "a")  # the parent's own stay
    assert (c.recipe.arch, c.recipe.lr, c.recipe.epochs, c.improves_on) == \
        ("writeup002_it3", 0.5, 4, None)
    s, t = params.screen["s"].recipe, params.screen["t"].recipe
    assert (s.arch, s.epochs, s.val_size, s.lr) == ("writeup002_it3", 4, 100, 0.5)
    assert (t.val_size, t.lr) == (100, 0.1)


@pytest.mark.parametrize("variants, needle", [
    ({"a": {"extends": "nope", "arch": "writeup004"}},
     "variants.a.extends = 'nope': must name another entry"),
    ({"a": {"extends": "b"}, "b": {"extends": "a"}},
     r"variants.b.extends = 'a': a cycle \(a -> b -> a\)"),
    ({"a": {"extends": "a", "arch": "writeup004"}}, r"a cycle \(a -> a\)"),
])
def test_bad_extends(variants, needle):
    raw = with_changes()
    raw["variants"] = variants
    with pytest.raises(ParamsError, match=needle):
        parse_params(raw, search=True)


def test_resolved_recipe_leaves_out_what_does_not_apply():
    raw = with_changes()
    raw["variants"] = {"plain": {"arch": "writeup004", "scheduler": "none", "rotation": 0}}
    recipe = parse_params(raw, search=True).variants["plain"].recipe
    d = recipe.to_dict()
    assert not {"gamma", "step", "fill", "patience", "max_lr"} & set(d)
    assert make_recipe(d) == recipe  # the configs/<v>.json round trip


def test_one_cycle_drops_the_lr_and_momentum_it_overrides():
    raw = with_changes()
    raw["variants"] = {"cycle": {"arch": "writeup004", "scheduler": "onecycle", "max_lr": 0.1}}
    recipe = parse_params(raw, search=True).variants["cycle"].recipe
    assert recipe.lr is None and recipe.momentum is None and recipe.max_lr == 0.1
    raw["variants"]["cycle"] |= {"lr": 0.5, "momentum": 0.5}  # no re-training for these
    assert parse_params(raw, search=True).variants["cycle"].recipe.to_dict() == recipe.to_dict()


def test_every_key_is_documented_once():
    table = params_table()
    for key in KEYS:
        assert table.count(f"| `{key.name}` |") == 1
    doc = (ROOT / "docs/parameters.md").read_text()
    assert table in doc, "run `make readme`: docs/parameters.md's table is out of date"


def test_unknown_variant_name():
    with pytest.raises(ParamsError, match="unknown variant 'nope'; params.yaml defines: first"):
        parse_params(small_params()).variant("nope")


def run_stage(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)


def test_bad_params_exit_2_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_changes({"lr": -1})))
    result = run_stage(tmp_path, "stages.configure")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: lr = -1.0: must be a number > 0"
    assert not (tmp_path / "configs").exists()


def test_unknown_variant_on_command_line_exits_2(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))
    result = run_stage(tmp_path, "stages.train", "firts")
    assert result.returncode == 2
    assert "unknown variant 'firts'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_yaml_syntax_error(tmp_path):
    (tmp_path / "params.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_yaml_anchors_and_merge_keys_work(tmp_path):
    """`<<: *anchor` as PyYAML and DVC read it; a key beside the merge overrides it, and a key
    written twice is still an error."""
    raw = yaml.safe_dump(small_params(variants={}), sort_keys=False).replace("variants: {}\n", "")
    (tmp_path / "params.yaml").write_text(raw + """variants:
  first: &base
    arch: writeup002_it3
    lr: 0.05
  second:
    <<: *base
    lr: 0.2
  third: {<<: *base}
""")
    variants = load_params(tmp_path / "params.yaml").variants
    assert [v.recipe.lr for v in variants.values()] == [0.05, 0.2, 0.05]
    assert variants["second"].recipe.arch == "writeup002_it3"
    (tmp_path / "params.yaml").write_text(raw + "variants:\n  first: &b {arch: writeup004}\n"
                                          "  second: {<<: *b, lr: 0.1, lr: 0.2}\n")
    with pytest.raises(ParamsError, match="key 'lr' is given twice"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("key, text, value", [("train_subset", '"256"', 256),
                                              ("lr", '"0.1"', 0.1), ("epochs", "'7'", 7),
                                              ("seed", '"1_000"', 1000)])
def test_every_numeric_key_takes_a_quoted_number_alike(key, text, value):
    raw = small_params()
    raw["variants"]["first"][key] = yaml.safe_load(text)
    assert getattr(parse_params(raw).variant("first").recipe, key) == value


@pytest.mark.parametrize("key, text", [("epochs", '"2.5"'), ("train_subset", '"many"'),
                                       ("lr", '"fast"'), ("epochs", "2.5")])
def test_a_quoted_non_number_is_refused_alike(key, text):
    raw = small_params()
    raw["variants"]["first"][key] = yaml.safe_load(text)
    with pytest.raises(ParamsError, match=rf"variants.first.{key} = .*: must be"):
        parse_params(raw)


def test_params_nested_absurdly_deep_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text("variants: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(ParamsError, match="nested too deeply to read"):
        load_params(tmp_path / "params.yaml")


def test_configure_refuses_when_params_change_while_it_runs(tmp_path, monkeypatch):
    """A second `dvc exp run -S` writes params.yaml while the first run's configure resolves
    it: configure writes nothing, so DVC records no params that the configs were not made from."""
    import stages.configure as configure
    from mnist_iter import recipe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params()))

    def load_then_edit():
        params = recipe.load_params()
        with open("params.yaml", "a") as f:
            f.write("# max_lr changed by another run\n")
        return params

    monkeypatch.setattr(configure, "load_params", load_then_edit)
    with pytest.raises(SystemExit) as stop:
        configure.main()
    assert stop.value.code == 2
    assert not (tmp_path / "configs").exists() or not list((tmp_path / "configs").iterdir())


@pytest.mark.parametrize("written, message", [
    ("epochs: 1:30", "epochs = '1:30': YAML 1.1 reads this as 90, YAML 1.2 (DVC) otherwise; write "
                     "a plain number (an integer in [1, 1000])"),
    ("epochs: 010", "epochs = '010': YAML 1.1 reads this as 8,"),
    ("seed: 0b101", "seed = '0b101': YAML 1.1 reads this as 5,"),
    ("rotation: 1:30.5", "rotation = '1:30.5': YAML 1.1 reads this as 90.5,"),
    ("amp: yes", "amp = 'yes': YAML 1.1 reads this as True, YAML 1.2 (DVC) otherwise; write true "
                 "or false"),
    ("amp: Off", "amp = 'Off': YAML 1.1 reads this as False,"),
    ("epochs: no", "epochs = 'no': YAML 1.1 reads this as False,"),
])
def test_a_value_yaml_11_would_turn_into_another_is_refused(tmp_path, written, message):
    """Params are read as written: base 60, a leading zero, binary and yes/no/on/off mean one
    thing to PyYAML (YAML 1.1) and another to DVC (YAML 1.2) and to the eye."""
    key = written.split(":")[0]
    raw = yaml.safe_dump({k: v for k, v in small_params().items() if k != key}, sort_keys=False)
    (tmp_path / "params.yaml").write_text(f"{written}\n{raw}")
    with pytest.raises(ParamsError) as refused:
        load_params(tmp_path / "params.yaml")
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("written, value", [
    ("epochs: 15", 15), ("epochs: +15", 15), ("lr: 0.04", 0.04), ("lr: 1e-3", 0.001),
    ("lr: 4.0e-2", 0.04), ("seed: 0", 0), ("seed: 1_000", 1000), ("amp: true", True),
    ("amp: False", False), ("fill: 0", 0.0), ("lr: '0.05'", 0.05),
])
def test_the_usual_yaml_spellings_are_read_as_written(tmp_path, written, value):
    key = written.split(":")[0]
    raw = yaml.safe_dump({k: v for k, v in small_params().items() if k != key}, sort_keys=False)
    (tmp_path / "params.yaml").write_text(f"{written}\n{raw}")
    assert getattr(load_params(tmp_path / "params.yaml").variants["first"].recipe, key) == value
