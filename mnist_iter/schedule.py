"""The optimizer and the one object that decides when its learning rate moves."""
from __future__ import annotations

import torch

ONECYCLE_DIV = 25.0  # one-cycle starts at max_lr / this (OneCycleLR's default div_factor)
ONECYCLE_MOMENTUM = 0.95  # ... and at this momentum, cycled down to 0.85 (OneCycleLR's default)


def step_factor(epoch: int, step: int, gamma: float, start: int = 1) -> float:
    """StepLR's lr multiplier in `epoch` (1-based) when decays are counted from epoch `start`."""
    return gamma ** (max(0, epoch - start) // step)


def make_optimizer(params, recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer over `params` (a model's parameters)."""
    # one-cycle has no lr or momentum of its own (None): OneCycleLR overwrites both on creation,
    # so the optimizer starts with the values it sets
    onecycle = recipe.scheduler == "onecycle"
    lr = recipe.max_lr / ONECYCLE_DIV if onecycle else recipe.lr
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=recipe.weight_decay)
    momentum = ONECYCLE_MOMENTUM if onecycle else recipe.momentum
    return torch.optim.SGD(params, lr=lr, momentum=momentum,
                           weight_decay=recipe.weight_decay)


class Schedule:
    """When the learning rate moves: after every batch (one-cycle), after every epoch (step), or
    after an epoch on the loss it watches (plateau: `watches` names that loss); `none` never.
    The training loop calls after_batch() and after_epoch(losses) and nothing else."""

    def __init__(self, opt: torch.optim.Optimizer, recipe, steps_per_epoch: int):
        self.opt, self.kind = opt, recipe.scheduler
        self.watches = f"{recipe.plateau_on}_loss" if self.kind == "plateau" else None
        sched = torch.optim.lr_scheduler
        if self.kind == "step":
            self._sched = sched.LambdaLR(opt, lambda epoch: step_factor(
                epoch + 1, recipe.step, recipe.gamma, recipe.step_start))
        elif self.kind == "plateau":
            self._sched = sched.ReduceLROnPlateau(opt, mode="min", factor=recipe.factor,
                                                  patience=recipe.patience)
        elif self.kind == "onecycle":
            self._sched = sched.OneCycleLR(opt, max_lr=recipe.max_lr,
                                           total_steps=recipe.epochs * steps_per_epoch,
                                           div_factor=ONECYCLE_DIV,
                                           max_momentum=ONECYCLE_MOMENTUM)
        else:
            self._sched = None

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def after_batch(self) -> None:
        if self.kind == "onecycle":
            self._sched.step()

    def after_epoch(self, losses: dict[str, float]) -> None:
        if self.kind == "step":
            self._sched.step()
        elif self.kind == "plateau":
            self._sched.step(losses[self.watches])
