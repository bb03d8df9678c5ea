"""Learning-rate schedules and optimizer parameter groups shared by the LightningModules."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def warmup_cosine(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    warmup_lr: float,
    min_lr: float,
) -> float:
    """The learning rate at optimizer step ``step`` of the official VideoMAE schedule.

    Linear warmup from ``warmup_lr`` to ``peak_lr`` over ``warmup_steps`` steps, then a half cosine
    from ``peak_lr`` down to ``min_lr`` at ``total_steps``; ``min_lr`` after that.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_lr + (peak_lr - warmup_lr) * step / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def scaled_lr(base_lr: float, global_batch_size: int, reference: int = 256) -> float:
    """The linear scaling rule of the official recipes: ``base_lr x global batch / 256``."""
    return base_lr * global_batch_size / reference


def param_groups_weight_decay(
    model: nn.Module, weight_decay: float, skip: Iterable[str] = ()
) -> list[dict]:
    """Split trainable parameters into a weight-decayed group and a group without decay.

    No decay for 1-D parameters (norm weights, biases, ``q_bias``/``v_bias``), for parameters whose
    name ends with ``.bias``, and for the names in ``skip`` (e.g. ``mask_token``, learned position
    tables); weight decay ``weight_decay`` for everything else (linear and conv weights).
    """
    skip = set(skip)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or name in skip:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
