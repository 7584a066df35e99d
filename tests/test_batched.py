"""The GPU path's seeds-as-one-network (mnist_iter/batched.py), checked on the CPU: every
architecture batches, and a batched run gives each seed the numbers of its own run.

The end-to-end comparisons train in float64: there the two paths agree to ~1e-9, so any
difference of logic (a seed drawing another's dropout, shuffling or augmentation, a schedule
or optimizer that differs) shows as a large one. In float32 the same runs differ by rounding
only, which a few dozen SGD steps amplify to ~1e-3 in a weight (measured), too loose a bar."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import small_params
from mnist_iter import batched, engine, lanes
from mnist_iter.engine import Diverged, seed_recipes, train_seed
from mnist_iter.models import ARCHITECTURES, build_model
from mnist_iter.recipe import parse_params

CPU = torch.device("cpu")


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="module")
def tiny(small_data) -> dict:
    tiny = dict(small_data)
    for kind in ("images", "labels"):
        tiny[f"test_{kind}"] = small_data[f"test_{kind}"][:500]
    return tiny


def recipe_of(variant: str = "first", **top):
    base = {"lr": 0.01, "seeds": 3, "epochs": 2, "train_subset": 256, "scale": 0.1,
            "translate": 0.1}
    return parse_params(small_params(**{**base, **top})).variant(variant).recipe


ARCHS = [(a, {}) for a in ARCHITECTURES] + [
    ("ours", {"widths": "8-10-12-8-12-14-14", "separable": s}) for s in (0, 3, 5)]


@pytest.mark.parametrize("arch, extra", ARCHS, ids=[f"{a}{e.get('separable', '')}" for a, e in ARCHS])
def test_every_architecture_batches(arch, extra, float64):
    """The grouped network of 3 seeds computes, for each seed's images, what that seed's own
    network computes, in training and in eval mode; its weights unstack into each seed's."""
    seeds = 3
    singles = []
    for s in range(seeds):
        torch.manual_seed(s)
        model = build_model(arch, 0.0, **extra)
        for m in model.modules():  # non-trivial BatchNorm statistics and affine parameters
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2)
                m.weight.data.uniform_(0.5, 1.5), m.bias.data.uniform_(-0.2, 0.2)
        singles.append(model)
    net = batched.grouped_network(singles[0], seeds)
    net.load_state_dict(batched.stack([m.state_dict() for m in singles]))
    x = torch.rand(6, seeds, 28, 28)
    for mode in ("train", "eval"):
        for m in (net, *singles):
            m.train(mode == "train")
        with torch.no_grad():
            out = net(x)
            assert out.shape == (6, seeds, 10)
            for s, model in enumerate(singles):
                torch.testing.assert_close(out[:, s], model(x[:, s:s + 1]), rtol=1e-9, atol=1e-9)
    for state, model in zip(batched.unstack(net.state_dict(), seeds), singles):
        assert state.keys() == model.state_dict().keys()
        for key, value in model.state_dict().items():
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("layer", [torch.nn.Dropout(0.3), torch.nn.Dropout2d(0.3)])
def test_each_seed_block_draws_its_own_dropout_as_torch_does(layer):
    """Seed s's block of the batched dropout is, bit for bit, torch's dropout of that seed's
    maps drawn from a generator seeded as that seed's run seeds torch."""
    seeds, x = 3, torch.rand(4, 3 * 5, 6, 6)
    ours = batched.SeedDropout(layer.p, isinstance(layer, torch.nn.Dropout2d), seeds)
    ours.generators = [torch.Generator().manual_seed(10 + s) for s in range(seeds)]
    got = ours(x)
    for s in range(seeds):
        torch.manual_seed(10 + s)
        assert torch.equal(got[:, 5 * s:5 * (s + 1)], layer(x[:, 5 * s:5 * (s + 1)]))
    assert torch.equal(ours.eval()(x), x)


CASES = {
    "dropout2d, rotation, zoom, shift, step": ("first", {}),
    "ours, one-cycle": ("second", {}),
    "adam": ("first", {"optimizer": "adam", "lr": 0.002}),
    "plateau on each seed's own loss": ("first", {"scheduler": "plateau", "plateau_on": "test",
                                                  "patience": 0}),
    "label smoothing, weight decay, a short last batch": (
        "first", {"label_smoothing": 0.1, "weight_decay": 1e-4, "train_subset": 224}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_batched_run_gives_each_seed_the_numbers_of_its_own_run(case, tiny, float64):
    variant, top = CASES[case]
    recipes = seed_recipes(recipe_of(variant, **top))
    together = batched.train_seeds(recipes, tiny, CPU, log=lambda _: None)
    assert len(together) == 3
    for (state, history), recipe in zip(together, recipes):
        model, alone = train_seed(recipe, tiny, CPU, log=lambda _: None)
        assert len(history) == len(alone) == 2
        for ours, theirs in zip(history, alone):
            assert ours.keys() == theirs.keys()
            for key in ours.keys() - {"seconds"}:
                assert ours[key] == pytest.approx(theirs[key], rel=1e-6, abs=1e-7), (key, ours)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-6, atol=1e-6)
    firsts = [state["1.0.weight"] for state, _ in together]
    assert not torch.equal(firsts[0], firsts[1])  # three seeds, three networks


def test_float32_batched_run_stays_close_to_the_single_runs(tiny):
    """In float32 (how it trains) the paths differ by rounding only: close after 4 steps."""
    recipes = seed_recipes(recipe_of(epochs=1, train_subset=256, seeds=2))
    for (state, history), recipe in zip(batched.train_seeds(recipes, tiny, CPU, log=lambda _: None),
                                        recipes):
        model, alone = train_seed(recipe, tiny, CPU, log=lambda _: None)
        assert history[0]["test_loss"] == pytest.approx(alone[0]["test_loss"], rel=1e-4)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-3, atol=1e-4)


def test_a_seed_that_diverges_stops_the_batched_run(tiny):
    recipes = seed_recipes(recipe_of(lr=100.0, dropout=0.0, epochs=1))
    with pytest.raises(Diverged, match=r"seed 1: training diverged in epoch 1 .* try a smaller lr"):
        batched.train_seeds(recipes, tiny, CPU, log=lambda _: None)


def test_run_recipe_trains_the_seeds_together_where_selected(recipe, mnist_data, tmp_path,
                                                              monkeypatch):
    """Where batching is selected (CUDA; here forced on the CPU), run_recipe trains the seeds
    as one network and hands back each seed's weights, which its own network loads."""
    data_file = tmp_path / "mnist.pt"
    torch.save(mnist_data, data_file)
    monkeypatch.setattr(batched, "batches_seeds", lambda device, r: True)
    r = dataclasses.replace(recipe, seeds=2, train_subset=256)
    done = lanes.run_recipe(r, CPU, data_file, log=lambda _: None)
    assert done.together and done.lanes == 2
    assert list(done.runs["seed"].unique()) == [r.seed, r.seed + 1]
    for state in done.states:
        build_model(r.arch, r.dropout).load_state_dict(state)  # strict: same keys and shapes


def test_batching_is_chosen_on_cuda_only(recipe, monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.delenv("GPU_BATCH", raising=False)
    monkeypatch.delenv("CUDA_GRAPHS", raising=False)
    assert batched.batches_seeds(cuda, recipe)
    assert not batched.batches_seeds(CPU, recipe)  # measured: it does not pay on these CPUs
    assert not batched.batches_seeds(torch.device("mps"), recipe)
    assert not batched.batches_seeds(cuda, dataclasses.replace(recipe, ema=0.999))
    assert not batched.batches_seeds(cuda, dataclasses.replace(recipe, compile="default"))
    assert batched.uses_graphs(cuda) and not batched.uses_graphs(CPU)
    monkeypatch.setenv("GPU_BATCH", "0")
    assert not batched.batches_seeds(cuda, recipe)
    monkeypatch.setenv("CUDA_GRAPHS", "0")
    assert not batched.uses_graphs(cuda)


def test_each_batch_shape_is_captured_once_after_its_warm_up(tiny, monkeypatch):
    """The step logic of the graph path, with the capture faked: a replay runs the recorded
    step, which reads only the static buffers. Two batch shapes (full and the short last one)
    give two captures, each after WARMUP_STEPS eager steps, and the same numbers as eager."""
    recipes = seed_recipes(recipe_of(epochs=4, train_subset=224, seeds=2))  # 4 steps: 64 x 3, 32
    eager = batched.train_seeds(recipes, tiny, CPU, log=lambda _: None)
    captured = []

    class Replay:
        def __init__(self, step):
            self.replay = step.compute

    def capture(step):
        captured.append((step.batch, step.calls))
        step.graph = Replay(step)

    monkeypatch.setattr(batched, "uses_graphs", lambda device: True)
    monkeypatch.setattr(batched._Step, "_capture", capture)
    graphed = batched.train_seeds(recipes, tiny, CPU, log=lambda _: None)
    assert sorted(captured) == [(32, batched.WARMUP_STEPS), (64, batched.WARMUP_STEPS)]
    for (a, ha), (b, hb) in zip(eager, graphed):
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in ha] == \
               [{k: v for k, v in r.items() if k != "seconds"} for r in hb]
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_a_failed_capture_names_its_first_error(tiny, monkeypatch):
    """Leaving torch.cuda.graph after an error raises "operation failed due to a previous error
    during capture" over it: the message names the step's own error instead."""
    from mnist_iter.cli import UserError

    class Graph:
        def register_generator_state(self, gen):
            pass

    class Capture:
        def __init__(self, graph, pool=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, kind, value, tb):
            if kind is not None:
                raise RuntimeError("operation failed due to a previous error during capture")

    def compute(step):
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED when calling cublasSgemm\nsecond line")

    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", Capture)
    monkeypatch.setattr(batched._Step, "compute", compute)
    run = batched._Run(seed_recipes(recipe_of(seeds=2)), tiny, CPU)
    with pytest.raises(UserError, match=r"\(RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED when "
                                        r"calling cublasSgemm\); CUDA_GRAPHS=0"):
        run.steppers[64]._capture()


def test_one_cycle_walks_its_schedule_once_not_every_step(tiny, monkeypatch):
    """The shadow optimizers' host time is paid once: one-cycle's table for the whole run is
    walked at the first epoch, and later epochs take their slice of it."""
    recipes = seed_recipes(recipe_of(seeds=2, epochs=3, scheduler="onecycle"))
    run = batched._Run(recipes, tiny, CPU)
    walked = []
    for schedule in run.schedules:
        monkeypatch.setattr(schedule, "after_batch",
                            lambda s=schedule, f=schedule.after_batch: (walked.append(s), f()))
    first = run.hyper_rows(1)
    assert len(walked) == 2 * 3 * run.steps_per_epoch  # every step of every seed, once
    second, third = run.hyper_rows(2), run.hyper_rows(3)
    assert len(walked) == 2 * 3 * run.steps_per_epoch  # not again
    assert len(first) == len(second) == run.steps_per_epoch and first[0] != second[0] != third[0]
    run = batched._Run(seed_recipes(recipe_of(seeds=2)), tiny, CPU)
    rows = run.hyper_rows(1)
    assert all(row == rows[0] for row in rows) and len(rows) == run.steps_per_epoch
