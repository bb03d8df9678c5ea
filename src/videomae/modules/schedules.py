"""Learning-rate schedules and optimizer parameter groups shared by the LightningModules."""

from __future__ import annotations

import math

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


_WRAPPER_PARTS = frozenset({"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod"})


def clean_param_name(name: str) -> str:
    """``name`` without the path parts that FSDP, activation checkpointing and ``torch.compile``
    insert (``_fsdp_wrapped_module`` etc.) and DDP's leading ``module.``: the name in the
    unwrapped model."""
    parts = [part for part in name.split(".") if part not in _WRAPPER_PARTS]
    if parts and parts[0] == "module":
        parts = parts[1:]
    return ".".join(parts)


def param_groups_weight_decay(
    model: nn.Module, weight_decay: float, no_decay: set[str]
) -> list[dict]:
    """Split trainable parameters into a weight-decayed group and a group without decay.

    ``no_decay`` holds the parameter names of the unwrapped model (``net.no_weight_decay()``, read
    before any wrapping: FSDP with ``use_orig_params`` turns every parameter into a flat 1-D
    view, so shapes read after wrapping would put every weight in the no-decay group); names of
    the (possibly wrapped) ``model`` are cleaned before they are looked up.
    """
    decay: list[torch.nn.Parameter] = []
    no_decay_params: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if clean_param_name(name) in no_decay:
            no_decay_params.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay_params, "weight_decay": 0.0},
    ]
