"""Finished seeds kept across interrupted runs (mnist_iter/seedstore.py)."""
from __future__ import annotations

import dataclasses

import torch

from mnist_iter import lanes
from mnist_iter.engine import seed_recipes
from mnist_iter.seedstore import SeedStore, seed_ranges

CPU = torch.device("cpu")


def store_in(tmp_path, **change) -> SeedStore:
    context = {"arithmetic": "fp32, portable x86", "portable": True, "device_name": "cpu",
               "test": True} | change
    return SeedStore.for_run("v", root=tmp_path, **context)


def test_a_seed_is_kept_under_everything_its_numbers_depend_on(tmp_path, recipe, monkeypatch):
    store = store_in(tmp_path)
    one = seed_recipes(dataclasses.replace(recipe, seeds=2))[1]
    state, history = {"w": torch.arange(3.0)}, [{"epoch": 1, "test_acc": 90.0}]
    assert store.load(one) is None
    store.save(one, state, history)
    got = store.load(one)
    assert torch.equal(got[0]["w"], state["w"]) and got[1] == history
    assert store.load(dataclasses.replace(one, lr=one.lr * 2)) is None  # another recipe
    assert store.load(dataclasses.replace(one, seed=one.seed + 1)) is None  # another seed
    for other in (store_in(tmp_path, arithmetic="fp32, native AVX512", portable=False),
                  store_in(tmp_path, test=False)):
        assert other.load(one) is None
    monkeypatch.setattr("mnist_iter.seedstore.code_digest", lambda: "other code")
    assert store_in(tmp_path).load(one) is None
    monkeypatch.undo()
    other_data = tmp_path / "other.pt"
    other_data.write_bytes(b"other images")
    assert store_in(tmp_path, data=other_data).load(one) is None  # other prepared data
    # a native run is kept per device: the same arithmetic on another CPU model is other bits
    native = dict(arithmetic="fp32, native AVX2", portable=False)
    store_in(tmp_path, device_name="A", **native).save(one, state, history)
    assert store_in(tmp_path, device_name="B", **native).load(one) is None


def test_a_damaged_seed_file_is_trained_again(tmp_path, recipe):
    store = store_in(tmp_path)
    store.save(recipe, {"w": torch.ones(2)}, [{"epoch": 1}])
    store.path(recipe).write_bytes(store.path(recipe).read_bytes()[:50])
    assert store.load(recipe) is None


def test_run_recipe_trains_only_the_seeds_it_does_not_hold(tmp_path, recipe, mnist_data):
    data_file = tmp_path / "mnist.pt"
    torch.save(mnist_data, data_file)
    r = dataclasses.replace(recipe, seeds=3, train_subset=256)
    store, lines = store_in(tmp_path / "store"), []
    first = lanes.run_recipe(dataclasses.replace(r, seeds=1), CPU, data_file, store=store,
                             log=lambda _: None)  # seed 1 only, as an interrupted run leaves
    done = lanes.run_recipe(r, CPU, data_file, store=store, log=lines.append)
    assert lines[0] == ("seeds 1 kept from an earlier run (same recipe, code and arithmetic); "
                        "training 2-3") and done.kept == [1]
    assert all(torch.equal(done.states[0][k], first.states[0][k]) for k in first.states[0])
    fresh = lanes.run_recipe(r, CPU, data_file, log=lambda _: None)  # no store: all three
    for a, b in zip(done.states, fresh.states):
        assert all(torch.equal(a[k], b[k]) for k in a)  # kept or trained: the same bits
    assert done.runs.drop(columns="seconds").equals(fresh.runs.drop(columns="seconds"))
    again = lanes.run_recipe(r, CPU, data_file, store=store, log=lines.append)
    assert lines[-1].endswith("nothing left to train") and again.kept == [1, 2, 3]


def test_seed_ranges():
    assert seed_ranges([3, 1, 2, 5, 7, 8]) == "1-3, 5, 7-8" and seed_ranges([4]) == "4"


def test_a_seed_that_cannot_be_kept_is_one_line(tmp_path, recipe, monkeypatch):
    import errno

    import pytest

    from mnist_iter import seedstore
    from mnist_iter.cli import UserError

    def full(obj, path):
        open(path, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(seedstore.torch, "save", full)
    store = store_in(tmp_path)
    with pytest.raises(UserError, match=r"^no space left on device keeping seed 1 in .*; free "
                                        r"some space and run it again \(nothing was changed"):
        store.save(recipe, {"w": torch.ones(1)}, [{"epoch": 1}])
    assert list(store.folder.iterdir()) == []  # no half-written file left
