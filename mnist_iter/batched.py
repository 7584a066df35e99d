"""A variant's seeds trained together, as one network: the GPU path.

S seeds of one recipe become one grouped network: every convolution gets S times the channels
and S times the groups, every BatchNorm S times the channels, so seed s owns channel block s of
every layer and no weight, statistic or gradient crosses between seeds. Each seed keeps what its
own run has: its weight init (built from its seed, then stacked), its shuffling and augmentation
(its own generator, drawn in the order of its run), its dropout stream (its own generator), its
BatchNorm statistics, its optimizer state and its schedule (a plateau schedule watches its own
loss). The loss is the sum of the seeds' mean losses, so each seed's gradient is that of its run.
On a CPU the result is each seed's single run within float tolerance (tests/test_batched.py);
the CPU trains seed by seed all the same (batching does not pay there, docs/evidence.md). On
CUDA that holds for variants without dropout only: a single run's nn.Dropout there is a fused
kernel that draws other random numbers than bernoulli_, so a variant with dropout > 0 trains
to other (equally valid) numbers batched than seed by seed (GPU_BATCH=0).

On CUDA the whole training step (gather, augmentation, forward, backward, update, metrics) is
captured once as a CUDA graph and replayed: one launch a step instead of a few hundred. The
step reads everything that changes from static device buffers (the batch's indices, each seed's
lr and momentum), and the seeds' generators are registered with the graph, so a replay draws
new random numbers as an eager step would. Checkpoints stay one file per seed: `unstack`.
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mnist_iter.augment import affine, draw_moves
from mnist_iter.cli import UserError, env_switch
from mnist_iter.device import Speedups, autocast, pick_speedups, place
from mnist_iter.engine import (EVAL_BATCH, Diverged, Watch, as_input, check_converged,
                               format_row, make_splits, splits_line)
from mnist_iter.models import Normalize, model_for
from mnist_iter.schedule import Schedule, make_optimizer

WARMUP_STEPS = 3  # eager steps of each batch shape before its graph is captured (CUDA's advice)


def batches_seeds(device: torch.device, recipe) -> bool:
    """Whether `run_recipe` trains the recipe's seeds together: on CUDA, unless $GPU_BATCH is
    off, for recipes without `ema` or `compile` (those train seed by seed, as on a CPU)."""
    return (device.type == "cuda" and env_switch("GPU_BATCH", True)
            and not recipe.ema and recipe.compile == "none")


def uses_graphs(device: torch.device) -> bool:
    """CUDA graphs on CUDA unless $CUDA_GRAPHS is off (eager, for comparison and debugging)."""
    return device.type == "cuda" and env_switch("CUDA_GRAPHS", True)


# ---- the grouped network ---------------------------------------------------------------------
class SeedDropout(nn.Module):
    """Dropout (or Dropout2d: one draw per channel map) whose seed blocks draw from their own
    generators, with the draws and arithmetic of torch's CPU dropout (bernoulli_ noise / (1-p))."""

    def __init__(self, p: float, feature: bool, seeds: int):
        super().__init__()
        self.p, self.feature, self.seeds = p, feature, seeds
        self.generators: list[torch.Generator] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        batch, channels = x.shape[0], x.shape[1] // self.seeds
        rest = (1,) * (x.dim() - 2) if self.feature else tuple(x.shape[2:])
        noise = torch.cat([torch.empty((batch, channels, *rest), dtype=x.dtype, device=x.device)
                           .bernoulli_(1 - self.p, generator=g) for g in self.generators], 1)
        return x * noise.div_(1 - self.p)


class SeedFlatten(nn.Module):
    """Flatten, then LogSoftmax over each seed's block: (B, S*C, ...) -> (B, S, C*...)."""

    def __init__(self, seeds: int, log_softmax: bool):
        super().__init__()
        self.seeds, self.log_softmax = seeds, log_softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.seeds, -1)
        return F.log_softmax(x, dim=2) if self.log_softmax else x


STATELESS = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def _grouped(m: nn.Module, seeds: int) -> nn.Module:
    """The layer of S seeds that `m` is for one (weights not copied: `stack` loads them)."""
    if isinstance(m, nn.Conv2d):
        return nn.Conv2d(m.in_channels * seeds, m.out_channels * seeds, m.kernel_size, m.stride,
                         m.padding, m.dilation, m.groups * seeds, m.bias is not None,
                         m.padding_mode)
    if isinstance(m, nn.BatchNorm2d):
        return nn.BatchNorm2d(m.num_features * seeds, m.eps, m.momentum, m.affine,
                              m.track_running_stats)
    if isinstance(m, (nn.Dropout, nn.Dropout2d)):
        return SeedDropout(m.p, isinstance(m, nn.Dropout2d), seeds)
    if isinstance(m, (*STATELESS, Normalize)):  # Normalize: scalar buffers, shared
        return copy.deepcopy(m)
    raise UserError(f"layer {type(m).__name__} cannot train its seeds together; set "
                    f"GPU_BATCH=0 to train them one after another")


def grouped_network(model: nn.Sequential, seeds: int) -> nn.Sequential:
    """The grouped network of `seeds` copies of `model`'s architecture, same module names (so
    the same state_dict keys), the head (Flatten, LogSoftmax) made per seed."""
    out = nn.Sequential()
    children = list(model.named_children())
    for i, (name, child) in enumerate(children):
        if isinstance(child, nn.Flatten):
            following = children[i + 1][1] if i + 1 < len(children) else None
            out.add_module(name, SeedFlatten(seeds, isinstance(following, nn.LogSoftmax)))
        elif isinstance(child, nn.LogSoftmax):
            out.add_module(name, nn.Identity())  # done by SeedFlatten
        elif isinstance(child, nn.Sequential):
            out.add_module(name, grouped_network(child, seeds))
        else:
            out.add_module(name, _grouped(child, seeds))
    return out


def stack(states: list[dict]) -> dict:
    """Seeds' state dicts -> the grouped network's: blocks concatenated along the channels;
    scalars (Normalize's mean and std, BatchNorm's step count) are the same in every seed."""
    return {k: v.clone() if v.dim() == 0 else torch.cat([s[k] for s in states])
            for k, v in states[0].items()}


def unstack(state: dict, seeds: int) -> list[dict]:
    """The grouped network's state dict -> each seed's, on the CPU, as its single run saves it."""
    return [{k: (v if v.dim() == 0 else v.chunk(seeds)[s]).detach().cpu().clone()
             for k, v in state.items()} for s in range(seeds)]


def build(recipes: list, mean: float, std: float) -> nn.Sequential:
    """The grouped network of the seeds' recipes, each block initialized as its seed's run
    initializes its own network."""
    models = []
    for r in recipes:
        torch.manual_seed(r.seed)  # weight init, as engine.train_seed
        models.append(model_for(r, mean, std))
    net = grouped_network(models[0], len(models))
    net.load_state_dict(stack([m.state_dict() for m in models]))
    return net


# ---- the update ------------------------------------------------------------------------------
class SeedOptimizer:
    """SGD (momentum, weight decay) or Adam, as torch.optim computes them, over the grouped
    network's parameters, with each seed's lr and momentum (Adam: beta1) read from a device
    tensor `hyper` (S, 2), so that a captured step follows the schedules. Each seed's schedule
    drives a shadow torch optimizer of its own (`shadows`), as in its single run."""

    def __init__(self, params: list[nn.Parameter], recipe, seeds: int):
        self.seeds = seeds
        self.params = [self._blocks(p.detach()) for p in params]  # (S, ...) views: seed s is row s
        self.shadows = [make_optimizer([torch.zeros(1, requires_grad=True)], recipe)
                        for _ in range(seeds)]
        group = self.shadows[0].param_groups[0]
        self.adam = recipe.optimizer == "adam"
        self.weight_decay = group["weight_decay"]
        self.beta2, self.eps = group["betas"][1] if self.adam else 0.0, group.get("eps", 0.0)
        self.state = [torch.zeros_like(p) for p in self.params]  # momentum / Adam's exp_avg
        # seed s's block of every parameter and momentum buffer: the SGD update is a few
        # foreach calls a seed (one kernel each on CUDA) instead of a few kernels a parameter
        self.param_rows = [[p[s] for p in self.params] for s in range(seeds)]
        self.state_rows = [[m[s] for m in self.state] for s in range(seeds)]
        self.square = [torch.zeros_like(p) for p in self.params] if self.adam else []
        self.count = torch.zeros((), device=params[0].device)  # Adam's step, on the device

    def current(self) -> list[list[float]]:
        """Each seed's lr and momentum (Adam: beta1) as its shadow optimizer has them now."""
        key = "betas" if self.adam else "momentum"
        return [[g["lr"], g[key][0] if self.adam else g[key]]
                for g in (o.param_groups[0] for o in self.shadows)]

    def _blocks(self, p: torch.Tensor) -> torch.Tensor:
        """A view of p, whose first dimension is S seed blocks, as (S, block, ...)."""
        return p.unflatten(0, (self.seeds, -1))

    @staticmethod
    def _per_seed(values: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """(S,) -> broadcastable over the seed blocks p (S, ...)."""
        return values.view(-1, *[1] * (p.dim() - 1))

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], hyper: torch.Tensor) -> None:
        if not self.adam:
            return self._sgd(grads, hyper)
        lr, moment = hyper[:, 0], hyper[:, 1]  # Adam: per parameter (no variant uses it)
        self.count += 1
        step_size = lr / (1 - moment ** self.count)
        root2 = (1 - self.beta2 ** self.count) ** 0.5
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = self._blocks(g)
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            self.state[i].lerp_(g, 1 - self._per_seed(moment, p))
            self.square[i].mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (self.square[i].sqrt() / root2).add_(self.eps)
            p.sub_(self._per_seed(step_size, p) * self.state[i] / denom)

    def _sgd(self, grads: list[torch.Tensor], hyper: torch.Tensor) -> None:
        """torch.optim.SGD's update (momentum, weight decay), seed by seed over all parameters:
        buf = momentum * buf + g (a zero buffer times momentum, plus g, is torch's first step);
        p -= lr * buf. `hyper[s]` holds seed s's lr and momentum as device scalars."""
        grad_rows = list(zip(*[self._blocks(g) for g in grads]))  # [seed][param]
        for s in range(self.seeds):
            g = list(grad_rows[s])
            if self.weight_decay:
                g = torch._foreach_add(g, self.param_rows[s], alpha=self.weight_decay)
            torch._foreach_mul_(self.state_rows[s], hyper[s, 1])
            torch._foreach_add_(self.state_rows[s], g)
            torch._foreach_sub_(self.param_rows[s], torch._foreach_mul(self.state_rows[s],
                                                                        hyper[s, 0]))


# ---- training --------------------------------------------------------------------------------
class _Step:
    """One training step of all seeds for one batch size, run eagerly or as a CUDA graph. What
    changes between steps is copied into static buffers first: `index` (S, B), `hyper` (S, 2)."""

    def __init__(self, run: "_Run", batch: int):
        self.run, self.batch, self.calls, self.graph = run, batch, 0, None
        self.index = torch.zeros(run.seeds, batch, dtype=torch.int64, device=run.device)
        self.hyper = torch.zeros(run.seeds, 2, device=run.device)

    def compute(self) -> None:
        r = self.run
        seeds, batch, recipe = r.seeds, self.batch, r.recipe
        x = as_input(r.train.images[self.index].view(seeds * batch, 28, 28))
        if recipe.augments:
            moves = [draw_moves(batch, recipe, g, r.device) for g in r.gens]
            angles, scale, shift = (None if m[0] is None else torch.cat(m) for m in zip(*moves))
            x = affine(x, angles, recipe.fill / 255, scale=scale, shift=shift)
        x = x.view(seeds, batch, 28, 28).transpose(0, 1)  # (B, S, 28, 28): seed s is channel s
        x = x.contiguous(memory_format=r.memory_format)
        y = r.train.labels[self.index]  # (S, B)
        with autocast(r.device, r.speed, cache=False):  # a captured step keeps no cast cache
            out = r.net(x)
        out = out.to(torch.get_default_dtype()).transpose(0, 1)  # (S, B, 10), fp32 after autocast
        losses = F.nll_loss(out.reshape(seeds * batch, -1), y.view(-1),
                            reduction="none").view(seeds, batch).mean(1)
        if recipe.label_smoothing:
            losses = (1 - recipe.label_smoothing) * losses - recipe.label_smoothing * out.mean(2).mean(1)
        grads = torch.autograd.grad(losses.sum(), r.params)
        r.opt.step(grads, self.hyper)
        r.loss_sum += losses.detach() * batch
        r.correct += (out.detach().argmax(2) == y).sum(1)

    def __call__(self, index: torch.Tensor, hyper: torch.Tensor) -> None:
        self.index.copy_(index)
        self.hyper.copy_(hyper)
        if self.graph is not None:
            self.graph.replay()
        elif self.calls >= WARMUP_STEPS and uses_graphs(self.run.device):
            self._capture()
            self.graph.replay()  # capturing records the step; the replay runs it
        elif self.run.device.type == "cuda":
            side = torch.cuda.Stream(self.run.device)  # warm-up off the default stream (CUDA's advice)
            side.wait_stream(torch.cuda.current_stream(self.run.device))
            with torch.cuda.stream(side):
                self.compute()
            torch.cuda.current_stream(self.run.device).wait_stream(side)
        else:
            self.compute()
        self.calls += 1

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        for g in self.run.gens + self.run.dropout_gens:
            graph.register_generator_state(g)
        first: list[BaseException] = []  # the step's own error: leaving the capture raises
        try:  # another ("operation failed due to a previous error during capture") over it
            with torch.cuda.graph(graph, pool=self.run.pool):
                try:
                    self.compute()
                except BaseException as e:
                    first.append(e)
                    raise
        except RuntimeError as e:
            cause = first[0] if first else e
            line = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
            raise UserError(f"capturing the training step as a CUDA graph failed "
                            f"({type(cause).__name__}: {line}); CUDA_GRAPHS=0 trains the seeds "
                            f"together without graphs") from cause
        self.run.pool = graph.pool()
        self.graph = graph


class _Run:
    """The state of one batched training: the network, its data, generators and optimizer."""

    def __init__(self, recipes: list, data: dict, device: torch.device):
        self.recipe, self.seeds, self.device = recipes[0], len(recipes), device
        self.speed: Speedups = pick_speedups(device, self.recipe)
        self.memory_format = torch.channels_last if self.speed.channels_last else torch.contiguous_format
        self.net = place(build(recipes, data["mean"], data["std"]), device, self.speed)
        self.params = list(self.net.parameters())
        self.splits = make_splits(data, self.recipe, device)
        self.train = self.splits["train"]
        self.gens = [torch.Generator(device=device).manual_seed(r.seed) for r in recipes]
        self.dropout_gens = [torch.Generator(device=device).manual_seed(r.seed) for r in recipes]
        for m in self.net.modules():
            if isinstance(m, SeedDropout):
                m.generators = self.dropout_gens
        self.opt = SeedOptimizer(self.params, self.recipe, self.seeds)
        count, batch = len(self.train.labels), self.recipe.batch_size
        self.steps_per_epoch = -(-count // batch)
        self.schedules = [Schedule(o, self.recipe, self.steps_per_epoch) for o in self.opt.shadows]
        for shadow in self.opt.shadows:  # a scheduler warns when it steps before its optimizer;
            shadow.step()  # no gradient: a no-op, once, as the single run's first step is
        self._cycle: list | None = None  # one-cycle's whole table, walked once (hyper_rows)
        self.loss_sum = torch.zeros(self.seeds, device=device)
        self.correct = torch.zeros(self.seeds, dtype=torch.int64, device=device)
        self.pool = None
        self.watch = Watch()
        self.steppers = {b: _Step(self, b) for b in {batch, count - (self.steps_per_epoch - 1) * batch}}

    def hyper_rows(self, epoch: int) -> list:
        """Each step's lr and momentum per seed for `epoch` (1-based), as Python floats
        (steps, S, 2), as the schedules move them. One-cycle moves them every step along a fixed
        curve: its whole table is walked once, at the first epoch (the shadow optimizers' host
        time is paid once per run, not per step). The others move only between epochs
        (`after_epoch`, which may read a loss), so an epoch's table is one row, repeated."""
        if self.recipe.scheduler != "onecycle":
            return [self.opt.current()] * self.steps_per_epoch
        if self._cycle is None:
            self._cycle = []
            for _ in range(self.recipe.epochs * self.steps_per_epoch):
                self._cycle.append(self.opt.current())
                for schedule in self.schedules:
                    schedule.after_batch()
        return self._cycle[(epoch - 1) * self.steps_per_epoch:epoch * self.steps_per_epoch]

    def epoch(self, rows: list) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass of every seed over the training split, with `rows` (hyper_rows) as each
        step's lr and momentum; each seed's mean loss and accuracy."""
        self.net.train()
        self.loss_sum.zero_()
        self.correct.zero_()
        count, batch = len(self.train.labels), self.recipe.batch_size
        perm = torch.stack([torch.randperm(count, device=self.device, generator=g)
                            for g in self.gens])
        hyper = torch.tensor(rows, dtype=torch.float32).to(self.device)  # one copy an epoch
        for i in range(self.steps_per_epoch):
            index = perm[:, i * batch:(i + 1) * batch]
            self.steppers[index.shape[1]](index, hyper[i])
            self.watch.tick(self.seeds)
        return (self.loss_sum / count).cpu(), (self.correct.cpu().double() * 100 / count)

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, float]]:
        """Each seed's mean NLL loss and accuracy (%), in fp32, as engine.evaluate measures."""
        self.net.eval()
        loss_sum = torch.zeros(self.seeds, device=self.device)
        correct = torch.zeros(self.seeds, dtype=torch.int64, device=self.device)
        for start in range(0, len(labels), EVAL_BATCH):
            x = as_input(images[start:start + EVAL_BATCH])
            x = x.expand(-1, self.seeds, -1, -1).contiguous(memory_format=self.memory_format)
            y = labels[start:start + EVAL_BATCH]
            out = self.net(x).transpose(0, 1)  # (S, E, 10)
            loss_sum += F.nll_loss(out.reshape(-1, out.shape[2]), y.repeat(self.seeds),
                                   reduction="none").view(self.seeds, -1).sum(1)
            correct += (out.argmax(2) == y).sum(1)
        acc = correct.float() / len(labels) * 100  # a float32 mean, as engine.evaluate's
        return list(zip((loss_sum / len(labels)).tolist(), acc.tolist()))


def train_seeds(recipes: list, data: dict, device: torch.device,
                log: Callable[[str], None] = print,
                watch: Watch | None = None) -> list[tuple[dict, list[dict]]]:
    """Train the seeds' recipes (one recipe, seeds seed, seed + 1, ...) together; for each seed,
    its trained weights (on the CPU) and its epochs, as `lanes._train` gives them. A seed whose
    run diverged stops them all with `Diverged`. An epoch's `seconds` is that of all seeds."""
    run = _Run(recipes, data, device)
    run.watch = watch or Watch()
    recipe = run.recipe
    graphs = "as one CUDA graph a step" if uses_graphs(device) else "eagerly"
    log(f"{splits_line(run.splits)}; {run.seeds} seed(s) as one network, {graphs}")
    histories: list[list[dict]] = [[] for _ in recipes]
    for epoch in range(1, recipe.epochs + 1):
        start = time.perf_counter()
        rows = run.hyper_rows(epoch)
        lrs = [row[0] for row in rows[0]]
        train_loss, train_acc = run.epoch(rows)
        held_out = {name: run.evaluate(run.splits[name].images, run.splits[name].labels)
                    for name in ("val", "test") if name in run.splits}
        seconds = time.perf_counter() - start
        for s, history in enumerate(histories):
            row = {"epoch": epoch, "lr": lrs[s], "train_loss": train_loss[s].item(),
                   "train_acc": train_acc[s].item()}
            for name, results in held_out.items():
                row |= {f"{name}_loss": results[s][0], f"{name}_acc": results[s][1]}
            row["seconds"] = seconds
            history.append(row)
            try:
                check_converged(history, epoch * run.steps_per_epoch, lrs[s])
            except Diverged as e:
                raise Diverged(f"seed {recipes[s].seed}: {e}") from None
            run.schedules[s].after_epoch(row)
            log(f"seed {recipes[s].seed}: {format_row(row, recipe.epochs)}")
            run.watch.epoch(recipes[s].seed, row)
    states = unstack(run.net.state_dict(), run.seeds)
    return list(zip(states, histories))
