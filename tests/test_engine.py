"""The training engine: rotation geometry, schedules, device selection, determinism, divergence."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from conftest import ROOT
from mnist_iter import augment, device as device_module, engine, lanes, schedule
from mnist_iter.augment import affine
from mnist_iter.cli import UserError
from mnist_iter.device import pick_device, pick_speedups
from mnist_iter.engine import Diverged, fit, seed_recipes, train_seed
from mnist_iter.models import build_model
from mnist_iter.schedule import step_factor


@pytest.fixture(scope="module")
def digits(mnist_data):
    return mnist_data["train_images"][:16]


@pytest.fixture
def recipe(recipe):
    return dataclasses.replace(recipe, train_subset=512, batch_size=64)


@pytest.mark.parametrize("angle", [7.0, -7.0, 30.0, -45.0, 90.0])
def test_rotation_matches_torchvision(digits, angle):
    x = digits.unsqueeze(1).float() / 255
    fill = 1 / 255  # seed 003's fill=(1,) on the 0-255 scale
    ours = affine(x, torch.full((len(x),), angle), fill)
    theirs = torch.stack([TF.rotate(img, angle, InterpolationMode.NEAREST, fill=[fill]) for img in x])
    assert (ours - theirs).abs().max() < 1e-6
    # torchvision's PIL path (the write-ups' RandomRotation on PIL images): same geometry,
    # nearest-neighbour rounding differs on a few border pixels
    pil = np.stack([np.array(TF.rotate(Image.fromarray(d.numpy()), angle, fill=1)) for d in digits])
    differs = (ours[:, 0] * 255).round().numpy() != pil
    assert differs.mean() < 0.005


@pytest.mark.parametrize("angle, scale, dx, dy", [
    (0.0, 1.0, 3, -2), (0.0, 1.1, 0, 0), (0.0, 0.9, 0, 0), (7.0, 1.1, -2, 3), (-20.0, 0.85, 1, 1)])
def test_zoom_and_shift_match_torchvision_affine(digits, angle, scale, dx, dy):
    x = digits.unsqueeze(1).float() / 255
    n = len(x)
    for mode, interp in (("bilinear", InterpolationMode.BILINEAR),
                         ("nearest", InterpolationMode.NEAREST)):
        ours = affine(x, torch.full((n,), angle), scale=torch.full((n,), scale),
                      shift=torch.tensor([[dx / 28, dy / 28]]).expand(n, 2), mode=mode)
        # torchvision's affine turns the other way round from its rotate; translate in pixels
        theirs = torch.stack([TF.affine(img, -angle, [dx, dy], scale, [0.0, 0.0], interp)
                              for img in x])
        differs = (ours - theirs).abs() > 1e-5
        if mode == "bilinear":  # the same geometry to float precision
            assert not differs.any()
        else:  # a zoom of exactly 1.1 puts sample points on pixel borders: ties round either way
            assert differs.float().mean() < 0.02


def test_augment_draws_only_what_the_recipe_asks_for(digits, recipe):
    x = digits.unsqueeze(1).float() / 255
    plain = dataclasses.replace(recipe, rotation=0.0, scale=0.0, translate=0.0)
    assert augment.augment(x, plain, torch.Generator().manual_seed(0)) is x
    for change in ({"rotation": 7.0}, {"scale": 0.1}, {"translate": 0.1}):
        r = dataclasses.replace(plain, **change)
        a = augment.augment(x, r, torch.Generator().manual_seed(0))
        b = augment.augment(x, r, torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and not torch.equal(a, x), change
        # every image its own draw: the first image alone does not get the second one's move
        assert not torch.equal(a[1], augment.augment(x[:1], r, torch.Generator().manual_seed(0))[0])


def test_each_image_gets_its_own_angle(digits):
    x = digits[:2].unsqueeze(1).float() / 255
    both = affine(x, torch.tensor([10.0, -20.0]))
    torch.testing.assert_close(both[1:], affine(x[1:], torch.tensor([-20.0])))
    assert not torch.equal(both[:1], affine(x[:1], torch.tensor([-20.0])))


def test_rotation_fill_reaches_corners():
    x = torch.zeros(1, 1, 28, 28)
    out = affine(x, torch.tensor([45.0]), fill=0.5)
    assert out[0, 0, 0, 0] == 0.5 and out[0, 0, 14, 14] == 0.0


def test_step_factor():
    # StepLR(step_size=2, gamma=0.1) from epoch 1: epochs 1-2 -> 1, 3-4 -> 0.1, ...
    assert [step_factor(e, 2, 0.1) for e in range(1, 6)] == pytest.approx([1, 1, .1, .1, .01])
    # seed 002: counted from epoch 8 only
    assert [step_factor(e, 2, 0.2, 8) for e in (1, 7, 9, 10, 12)] == pytest.approx(
        [1, 1, 1, .2, .04])


def test_pick_device_auto_and_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    with pytest.raises(UserError, match="CUDA is not available"):
        pick_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"


def test_trainings_on_a_multi_gpu_machine_take_one_gpu_each(monkeypatch, tmp_path):
    """N queue workers on N GPUs: each process holds the lock of the GPU it took until it ends."""
    device = device_module
    monkeypatch.setattr(device, "_claimed", [])
    assert [device.claim_gpu(3, tmp_path) for _ in range(3)] == [0, 1, 2]
    assert device.claim_gpu(3, tmp_path) in (0, 1, 2)  # all taken: shared, no error
    other = subprocess.run([sys.executable, "-c", "from pathlib import Path; from mnist_iter "
                            f"import device; print(device.claim_gpu(4, Path({str(tmp_path)!r})))"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == "3"
    for handle in device._claimed:
        handle.close()  # what the end of a process does
    assert device.claim_gpu(3, tmp_path) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(device, "claim_gpu", lambda count: 1)
    assert pick_device("cuda") == pick_device("auto") == torch.device("cuda", 1)


def test_speedup_selection(recipe, monkeypatch):
    cuda, cpu, mps = torch.device("cuda"), torch.device("cpu"), torch.device("mps")
    fast = dataclasses.replace(recipe, compile="reduce-overhead", amp=True)
    s = pick_speedups(cuda, fast)
    assert s.channels_last and s.compile_mode == "reduce-overhead" and s.amp_dtype == torch.bfloat16
    fp32 = dataclasses.replace(recipe, amp=False)
    assert pick_speedups(cuda, fp32) == device_module.Speedups(True, False, None, None)
    assert pick_speedups(mps, fast).amp_dtype is None
    assert not pick_speedups(cpu, fast).channels_last
    assert not pick_speedups(cpu, fast).cudnn_benchmark
    assert not pick_speedups(cuda, fast).cudnn_benchmark  # no autotuning races on a GPU
    assert not pick_speedups(mps, fast).cudnn_benchmark
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: False)
    assert pick_speedups(cpu, fast).amp_dtype is None
    monkeypatch.setattr(device_module, "cpu_has_bf16", lambda: True)
    assert pick_speedups(cpu, fast).amp_dtype is None  # the portable arithmetic is fp32
    native = dataclasses.replace(fast, cpu_math="native")
    assert pick_speedups(cpu, native).amp_dtype == torch.bfloat16


def test_place_applies_memory_format_and_cudnn_autotuning(recipe):
    model = build_model(recipe.arch, recipe.dropout)
    cpu = torch.device("cpu")
    try:
        device_module.place(model, cpu, device_module.Speedups(True, True, None, None))
        assert torch.backends.cudnn.benchmark
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
        assert convs[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.allow_tf32
        device_module.place(model, cpu, device_module.PLAIN)
        assert not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = False


def train_once(recipe, data):
    torch.manual_seed(recipe.seed)
    model = build_model(recipe.arch, recipe.dropout)
    _, history = fit(model, recipe, data, torch.device("cpu"), log=lambda _: None)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_same_seed_same_numbers(recipe, small_data):
    r = dataclasses.replace(recipe, epochs=2)
    first = train_once(r, small_data)
    assert first == train_once(r, small_data)
    assert first != train_once(dataclasses.replace(r, seed=2), small_data)
    assert first[-1]["test_acc"] > 25  # 512 images, 2 epochs: well above chance (10%)


BF16_CHILD = """
import dataclasses, sys
import torch
sys.path.insert(0, "tests")
from conftest import small_params
from mnist_iter import engine
from mnist_iter.data import load_split
from mnist_iter.device import cpu_has_bf16, pick_speedups
from mnist_iter.models import MNIST_MEAN, MNIST_STD
from mnist_iter.recipe import parse_params
if not cpu_has_bf16():
    print("no native bf16"); raise SystemExit
recipe = parse_params(small_params(amp=True, cpu_math="native")).variant("first").recipe
assert pick_speedups(torch.device("cpu"), recipe).name == "bf16"
from pathlib import Path
(train, train_y), (test, test_y) = (load_split(Path(sys.argv[1]), s) for s in ("train", "test"))
data = {"train_images": train[:512], "train_labels": train_y[:512], "test_images": test[:1000],
        "test_labels": test_y[:1000], "mean": MNIST_MEAN, "std": MNIST_STD}
model, history = engine.train_seed(recipe, data, torch.device("cpu"), log=lambda _: None)
loss, acc, _ = engine.evaluate(model, data["test_images"], data["test_labels"])
assert (history[-1]["test_loss"], history[-1]["test_acc"]) == (loss, acc)
with torch.autocast("cpu", dtype=torch.bfloat16):  # what the check would see if bf16 leaked
    bf16_loss, _, _ = engine.evaluate(model, data["test_images"], data["test_labels"])
assert bf16_loss != loss
print("ok")
"""


def test_bf16_training_reports_the_fp32_accuracy_of_its_weights(mnist_dir):
    """amp changes how a model trains, not how its accuracy is measured: the last epoch's test
    numbers are those the evaluate stage gets from the same weights in fp32. In a process of
    the native arithmetic (bf16 autocast needs it; this one runs the portable)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    from mnist_iter import cpu_math

    env = {k: v for k, v in os.environ.items() if k not in cpu_math.PINS}
    out = subprocess.run([sys.executable, "-c", BF16_CHILD, str(mnist_dir)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "no native bf16":
        pytest.skip("this CPU has no native bf16")
    assert out.stdout.strip() == "ok"


def test_divergence_is_detected(recipe, small_data):
    with pytest.raises(Diverged, match="diverged in epoch 1 .* try a smaller lr"):
        train_once(dataclasses.replace(recipe, lr=100.0, dropout=0.0), small_data)


def test_a_huge_lr_is_refused_even_when_the_training_loss_looks_finite(recipe, small_data):
    with pytest.raises(Diverged, match="training diverged in epoch 1 .* at lr 1e\\+06"):
        train_once(dataclasses.replace(recipe, lr=1e6, dropout=0.0), small_data)


ROW = {"epoch": 1, "lr": 0.1, "train_loss": 2.3, "train_acc": 11.0, "test_loss": 2.3,
       "test_acc": 9.8, "seconds": 1.0}


@pytest.mark.parametrize("row, steps, message", [
    (ROW | {"test_loss": float("nan")}, 10, r"in epoch 1 \(test_loss nan\)"),
    (ROW | {"train_acc": float("inf"), "test_acc": 99.0}, 10, r"\(train_acc inf\)"),
    (ROW, 500, r"test_acc 9.80% after 500 steps is chance level"),
    ({k: v for k, v in ROW.items() if not k.startswith("test")} | {"val_loss": 2.3,
                                                                   "val_acc": 10.1}, 900, "val_acc"),
])
def test_a_diverged_history_is_refused(row, steps, message):
    with pytest.raises(Diverged, match=message):
        engine.check_converged([row], steps, 0.1)


@pytest.mark.parametrize("stage, says", [
    (None, "(nothing was changed; the previous outputs are as they were)"),
    ("train@w4_base", "(nothing was changed; the previous outputs are as they were; the seeds "
                      "that finished are kept in .seeds/"),
    ("search/dvc.yaml:screen@cand", "nothing was changed; the previous outputs are as they were;"),
    ("evaluate@w4_base", "DVC had removed its previous outputs before it started: `dvc repro "
                         "evaluate@w4_base` writes them again"),
])
def test_a_diverged_run_says_what_became_of_the_outputs(monkeypatch, stage, says):
    """Alone, a refused run changed nothing; under `dvc repro` a training stage's outputs
    persist (dvc.yaml), while DVC had already removed another stage's, and the message says so
    and how to get them back."""
    if stage is None:
        monkeypatch.delenv("DVC_STAGE", raising=False)
    else:
        monkeypatch.setenv("DVC_STAGE", stage)
    with pytest.raises(Diverged) as refused:
        engine.check_converged([ROW | {"test_loss": float("nan")}], 10, 0.1)
    assert says in str(refused.value) and "\n" not in str(refused.value)
    assert ("nothing was changed" in str(refused.value)) == (stage is None or "evaluate" not in stage)


def test_a_short_run_at_chance_is_not_called_diverged():
    engine.check_converged([ROW], engine.JUDGED_STEPS - 1, 0.1)  # too few steps to judge
    engine.check_converged([ROW | {"test_acc": 12.5}], 10_000, 0.1)


def test_no_host_sync_inside_the_step_loop(recipe, small_data, monkeypatch):
    calls = []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: calls.append(1) or real_item(t))
    model = build_model(recipe.arch, recipe.dropout)
    splits = engine.make_splits(small_data, recipe, torch.device("cpu"))
    opt = schedule.make_optimizer(model.parameters(), recipe)
    speed = pick_speedups(torch.device("cpu"), recipe)
    step = engine.make_step(model, opt, None, torch.device("cpu"), speed)
    gen = torch.Generator().manual_seed(0)
    engine.train_epoch(model, step, splits["train"], recipe, gen, speed)
    assert len(calls) == 2  # loss and accuracy, read once at the end of the epoch (8 steps)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_one_cycle_ignores_lr_and_momentum(recipe, optimizer):
    """A one-cycle recipe has no lr/momentum (None): OneCycleLR sets both on creation, so the
    optimizer ends up as it would from any lr and momentum."""
    r = dataclasses.replace(recipe, optimizer=optimizer, scheduler="onecycle", max_lr=0.1,
                            lr=None, momentum=None)
    model = build_model(r.arch, r.dropout)
    ours = schedule.make_optimizer(model.parameters(), r)
    other = (torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5) if optimizer == "sgd"
             else torch.optim.Adam(model.parameters(), lr=0.5, betas=(0.5, 0.999)))
    for opt in ours, other:
        schedule.Schedule(opt, r, steps_per_epoch=10)
    settings = [{k: v for k, v in o.param_groups[0].items() if k != "params"} for o in (ours, other)]
    assert settings[0] == settings[1]
    assert settings[0]["lr"] == pytest.approx(0.1 / 25)


@pytest.mark.parametrize("scheduler", ["none", "step", "plateau", "onecycle"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_schedulers_and_optimizers_run(recipe, small_data, scheduler, optimizer):
    r = dataclasses.replace(recipe, scheduler=scheduler, optimizer=optimizer, epochs=2,
                            train_subset=256, patience=0, factor=0.5, plateau_on="val",
                            val_size=512 if scheduler == "plateau" else 0, max_lr=0.05, step=1, gamma=0.5, step_start=1,
                            lr=0.01 if optimizer == "sgd" else 0.002)
    history = train_once(r, small_data)
    assert len(history) == 2
    if scheduler == "step":
        assert history[1]["lr"] == pytest.approx(history[0]["lr"] * 0.5)
    if scheduler == "plateau":
        assert "val_loss" in history[0]


def test_label_smoothing_changes_the_loss_only_when_asked(recipe, small_data):
    plain = train_once(dataclasses.replace(recipe, label_smoothing=0.0), small_data)
    smooth = train_once(dataclasses.replace(recipe, label_smoothing=0.1), small_data)
    assert plain != smooth
    assert plain == train_once(recipe, small_data)


def test_validation_split_is_held_out_and_reported(recipe, mnist_data, small_data):
    history = train_once(dataclasses.replace(recipe, val_size=1000), small_data)
    assert {"val_loss", "val_acc"} <= set(history[0])
    splits = engine.make_splits(mnist_data, dataclasses.replace(recipe, val_size=1000,
                                                                train_subset=0), torch.device("cpu"))
    assert len(splits["val"].labels) == 1000 and len(splits["train"].labels) == 59_000


def test_a_seed_gives_the_same_numbers_in_a_lane_as_alone(recipe, mnist_data, tmp_path,
                                                          monkeypatch):
    """Two 1-thread lanes (worker processes) against each seed trained alone in this process
    with one thread: the same histories and weights, and every seed's weights are kept."""
    data_file = tmp_path / "mnist.pt"
    torch.save(mnist_data, data_file)
    two = dataclasses.replace(recipe, seeds=2, threads=1, epochs=1)
    monkeypatch.setenv("TRAIN_CORES", "2")
    cpu = torch.device("cpu")
    assert lanes.lane_count(2, 1, cpu) == 2
    in_lanes = lanes.run_recipe(two, cpu, data_file, log=lambda _: None)
    monkeypatch.setenv("TRAIN_CORES", "1")
    threads = torch.get_num_threads()
    try:
        alone = lanes.run_recipe(two, cpu, data_file, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    assert (in_lanes.lanes, alone.lanes) == (2, 1)
    strip = lambda runs: runs.drop(columns="seconds")  # noqa: E731
    pd.testing.assert_frame_equal(strip(in_lanes.runs), strip(alone.runs))
    assert list(in_lanes.runs["seed"].unique()) == [recipe.seed, recipe.seed + 1]
    assert len(in_lanes.states) == len(alone.states) == 2  # every seed's weights are kept
    for a, b in zip(alone.states, in_lanes.states):
        for key, tensor in a.items():
            assert torch.equal(tensor, b[key]), key
    assert not torch.equal(*(s["1.0.weight"] for s in in_lanes.states))  # two seeds, two runs


def test_gpu_lanes_come_from_the_environment(monkeypatch):
    gpu = torch.device("cuda")
    assert lanes.lane_count(5, 1, gpu) == 1
    monkeypatch.setenv("GPU_LANES", "3")
    assert lanes.lane_count(5, 1, gpu) == 3 and lanes.lane_count(2, 1, gpu) == 2
    monkeypatch.setenv("GPU_LANES", "x")
    with pytest.raises(UserError, match="GPU_LANES = 'x': must be a whole number"):
        lanes.lane_count(5, 1, gpu)


def test_lane_count_follows_the_cores(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setenv("TRAIN_CORES", "2")
    assert (lanes.lane_count(5, 1, cpu), lanes.lane_count(1, 1, cpu),
            lanes.lane_count(5, 2, cpu), lanes.lane_count(5, 1, cuda)) == (2, 1, 1, 1)
    monkeypatch.setenv("TRAIN_CORES", "none")
    with pytest.raises(UserError, match="TRAIN_CORES = 'none'"):
        lanes.lane_count(2, 1, cpu)


@pytest.mark.parametrize("name", ["TRAIN_CORES", "GPU_LANES"])
@pytest.mark.parametrize("value", ["²", "٣", "1e3", "-1", "0", "9999999", "two"])
def test_odd_core_and_lane_counts_are_one_line(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    device = torch.device("cpu" if name == "TRAIN_CORES" else "cuda")
    with pytest.raises(UserError, match=rf"{name} = .*: must be a whole number of \w+ >= 1"):
        lanes.lane_count(3, 1, device)
