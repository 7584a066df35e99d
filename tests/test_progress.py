"""What a training shows while it runs (mnist_iter/progress.py, lanes.run_recipe's `name`)."""
from __future__ import annotations

import dataclasses
import io

import pandas as pd
import pytest
import torch

from mnist_iter import lanes, progress
from mnist_iter.seedstore import SeedStore


def test_without_a_terminal_a_line_a_minute_and_the_epochs_in_the_live_file(tmp_path,
                                                                             monkeypatch):
    clock = iter([0.0, 30.0, 61.0, 62.0, 130.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out, live = io.StringIO(), tmp_path / "live" / "v.csv"
    bar = progress.Progress("v", total_steps=100, live=live,
                            kept=[{"seed": 1, "epoch": 1, "test_acc": 98.0}], out=out)
    bar.tick(10)  # t=30: too soon
    bar.tick(10)  # t=61: a line
    bar.epoch(2, {"epoch": 1, "test_acc": 97.5})
    bar.tick(30)  # t=62
    bar.tick(10)  # t=130: a line
    bar.close()
    assert out.getvalue().splitlines() == ["v: 20% of 100 seed-steps, about 4 min left",
                                           "v: 60% of 100 seed-steps, about 87 s left"]
    assert pd.read_csv(live).to_dict("records") == [
        {"seed": 1, "epoch": 1, "test_acc": 98.0}, {"seed": 2, "epoch": 1, "test_acc": 97.5}]


def test_the_estimate_counts_rounds_of_lanes():
    recipe = type("R", (), {"epochs": 10, "batch_size": 100})()
    assert progress.estimate(0.1, recipe, seeds=5, lanes=2, steps_per_epoch=600,
                             eval_images=10_000) == pytest.approx(10 * 0.1 * (600 + 10_000 / 300) * 3)


def test_a_named_run_says_what_it_trains_and_writes_every_epoch_live(tmp_path, recipe,
                                                                     mnist_data):
    data_file = tmp_path / "mnist.pt"
    torch.save(mnist_data, data_file)
    r = dataclasses.replace(recipe, seeds=2, train_subset=256, epochs=2)
    store = SeedStore.for_run("v", "fp32, portable x86", True, "cpu", True, root=tmp_path / "s")
    lanes.run_recipe(dataclasses.replace(r, seeds=1), torch.device("cpu"), data_file,
                     store=store, log=lambda _: None)
    lines, live = [], tmp_path / "live.csv"
    done = lanes.run_recipe(r, torch.device("cpu"), data_file, store=store, log=lines.append,
                            name="v", live=live)
    assert lines[0].startswith("seeds 1 kept from an earlier run")
    assert lines[1].startswith("v: 1 seed(s) x 2 epochs x 4 steps in 1 lane(s) of 1 thread(s) "
                               "on cpu; about ") and "(a step measured at" in lines[1]
    rows = pd.read_csv(live)
    assert rows[["seed", "epoch"]].values.tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    assert rows["test_acc"].tolist() == done.runs["test_acc"].tolist()


def test_a_run_that_does_not_finish_puts_the_previous_live_file_back(tmp_path):
    live = tmp_path / "v.csv"
    live.write_text("seed,epoch\n1,1\n")
    bar = progress.Progress("v", total_steps=10, live=live, out=io.StringIO())
    bar.epoch(2, {"epoch": 1})
    assert live.read_text() == "seed,epoch\n2,1\n"
    bar.close(finished=False)
    assert live.read_text() == "seed,epoch\n1,1\n"
    fresh = tmp_path / "new.csv"
    bar = progress.Progress("v", total_steps=10, live=fresh, out=io.StringIO())
    bar.epoch(1, {"epoch": 1})
    bar.close(finished=False)
    assert not fresh.exists()
