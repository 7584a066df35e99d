"""No number that cannot be true reaches a table, and no file is read as something else
(issue 53): impossible accuracies, seeds and spreads, a checkpoint of another variant, seed or
recipe, a damaged archive, prepared data that cannot be MNIST."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import small_params
from mnist_iter import checkpoint, files, report
from mnist_iter.cli import DataError, UserError
from mnist_iter.compare import _checked
from mnist_iter.data import load_data
from mnist_iter.models import count_params, model_for
from mnist_iter.recipe import parse_params


@pytest.mark.parametrize("column, value", [("test_acc", 150.0), ("test_acc", -1.0),
                                           ("train_acc", 100.5), ("test_loss", -0.1),
                                           ("test_acc", float("nan")), ("epoch", 0),
                                           ("seed", 1.5)])
def test_a_runs_file_with_an_impossible_number_is_refused(column, value):
    runs = pd.DataFrame([{"seed": 1.0, "epoch": 1.0, "train_acc": 99.0, "test_acc": 99.0,
                          "test_loss": 0.02}] * 2)  # floats: as a damaged CSV reads
    runs.loc[1, column] = value
    with pytest.raises(ValueError, match=rf"^{column} = .* in row 3 cannot be true"):
        report.impossible(runs)


@pytest.fixture
def variant_files(tmp_path, monkeypatch):
    """A variant's committed-looking files in a temporary project (runs, metrics, predictions)."""
    monkeypatch.chdir(tmp_path)
    variant = parse_params(small_params()).variant("first")
    params = count_params(model_for(variant.recipe))
    train, evaluation = files.train_dir("first"), files.eval_dir("first")
    for folder in (train, evaluation, files.confusion_file("first").parent):
        folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"seed": 1, "epoch": e, "test_acc": 99.0 + e / 10, "test_loss": 0.03}
                  for e in (1, 2, 3)]).to_csv(train / "runs.csv", index=False)
    (train / "metrics.json").write_text(json.dumps({"device_name": "cpu", "arithmetic": "fp32"}))
    (evaluation / "metrics.json").write_text(json.dumps({"params": params}))
    pd.DataFrame({"actual": [1] * 10_000, "predicted": [1] * 10_000}).to_csv(
        files.confusion_file("first"), index=False)
    for folder, listed in ((train, ["runs.csv", "metrics.json"]), (evaluation, ["metrics.json"])):
        files.write_json(folder / files.MANIFEST, {str(folder / n): files.sha256(folder / n)
                                                   for n in listed})
    return variant, train, evaluation


def test_a_set_of_outputs_cut_by_a_kill_between_two_renames_is_refused(tmp_path, monkeypatch):
    """The manifest is written after every file of the set: a kill anywhere before it leaves
    new files beside the previous manifest, which names the first file that does not match."""
    monkeypatch.chdir(tmp_path)
    manifest = Path("set") / files.MANIFEST
    with files.outputs(manifest=manifest) as out:
        out.text("set/a.txt", "old a")
        out.text("set/b.txt", "old b")
    files.check_outputs(manifest, "train@x")  # a whole set
    real, renamed = files.os.replace, []

    def killed_after_one(src, dst):
        if renamed:
            raise KeyboardInterrupt  # the process dies here
        renamed.append(dst)
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_after_one)
    with pytest.raises(KeyboardInterrupt), files.outputs(manifest=manifest) as out:
        out.text("set/a.txt", "new a")
        out.text("set/b.txt", "new b")
    monkeypatch.setattr(files.os, "replace", real)
    with pytest.raises(DataError, match=r"^set/a.txt: not the file train@x wrote with the others "
                                        r"in set/outputs.json .*; `dvc repro -f train@x`"):
        files.check_outputs(manifest, "train@x")


def test_the_report_refuses_a_file_replaced_by_hand(variant_files):
    variant, train, _ = variant_files
    (train / "metrics.json").write_text(json.dumps({"device_name": "gpu", "arithmetic": "fp32"}))
    with pytest.raises(DataError, match=r"train/metrics.json: not the file train@first wrote"):
        report.read_result(variant)


def test_the_report_reads_only_numbers_that_can_be_true(variant_files):
    variant, train, evaluation = variant_files
    assert report.read_result(variant).summary["last3"] == pytest.approx(99.2)
    runs = pd.read_csv(train / "runs.csv")
    runs.loc[2, "test_acc"] = 150.0
    runs.to_csv(train / "runs.csv", index=False)
    with pytest.raises(DataError, match=r"runs.csv: damaged \(test_acc = 150.0 in row 4 cannot "
                                        r"be true .*\); `dvc repro -f train@first`"):
        report.read_result(variant)


def test_the_report_refuses_another_variants_parameter_count(variant_files):
    variant, _, evaluation = variant_files
    (evaluation / "metrics.json").write_text(json.dumps({"params": 19_942}))
    with pytest.raises(DataError, match=r"eval/metrics.json: damaged \(params = 19,942, but "
                                        r"first's network has [\d,]+: another variant's "
                                        r"checkpoint was evaluated\); `dvc repro -f evaluate@first`"):
        report.read_result(variant)


@pytest.mark.parametrize("data, says", [
    ({"last3": 150.0, "seeds": 3}, "last3 = 150.0 cannot be true (must be an accuracy in [0, 100])"),
    ({"last3": 99.0, "seeds": 0}, "seeds = 0 cannot be true (must be a whole number >= 1)"),
    ({"last3": 99.0, "seeds": 3, "last3_sd": -0.5}, "last3_sd = -0.5 cannot be true"),
])
def test_compare_shows_no_impossible_metric(data, says):
    with pytest.raises(UserError, match=rf"^HEAD: reports/metrics/x.json: {says}".replace(
            "(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        _checked(data, "HEAD", "reports/metrics/x.json")


@pytest.fixture
def saved(tmp_path):
    params = parse_params(small_params())
    recipe = params.variant("first").recipe
    model = model_for(recipe)
    path = tmp_path / "seed1.pt"
    torch.save(checkpoint.content(model, "first", 1, recipe.to_dict()), path)
    return path, recipe, params.variant("second").recipe


def test_a_checkpoint_must_be_the_one_the_stage_asks_for(saved, tmp_path):
    path, recipe, other = saved
    checkpoint.load_model(path, expect=("first", 1, recipe.to_dict()))
    with pytest.raises(UserError, match=r"holds 'first' seed 1, not 'second' seed 1 \(a file "
                                        r"copied or renamed into place\)"):
        checkpoint.load_model(path, expect=("second", 1, other.to_dict()))
    with pytest.raises(UserError, match="holds 'first' seed 1, not 'first' seed 2"):
        checkpoint.load_model(path, expect=("first", 2, recipe.to_dict()))
    changed = dataclasses.replace(recipe, lr=recipe.lr * 2).to_dict()
    with pytest.raises(UserError, match=r"trained with lr = 0.04, but the recipe asks for 0.08"):
        checkpoint.load_model(path, expect=("first", 1, changed))


def test_a_checkpoint_that_fails_its_archive_checksum_is_refused(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    start = data.find(b"data.pkl") + 200  # inside the stored members, not the directory
    for i in range(start, start + 100):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"damaged \(its member .* fails the archive's own "
                                        r"checksum\)"):
        checkpoint.load_model(path)


@pytest.mark.parametrize("change, says", [
    (lambda d: d["train_labels"].__setitem__(3, 10), "a train label of 10, outside the digits"),
    (lambda d: d["test_labels"].__setitem__(0, -1), "a test label of -1, outside the digits"),
    (lambda d: d.__setitem__("train_images", torch.zeros_like(d["train_images"])),
     "every train pixel is 0: no images in it"),
    (lambda d: d.__setitem__("std", 0.0), "std 0.0 outside"),
])
def test_prepared_data_that_cannot_be_mnist_is_refused(mnist_data, tmp_path, change, says):
    bad = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in mnist_data.items()}
    change(bad)
    torch.save(bad, tmp_path / "mnist.pt")
    with pytest.raises(DataError, match=rf"not this project's prepared data \(.*{says}"):
        load_data(tmp_path / "mnist.pt")
