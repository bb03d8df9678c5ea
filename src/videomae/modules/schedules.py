"""Learning-rate schedules and optimizer parameter groups shared by the LightningModules."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn

from videomae.modules.config import OptimConfig

log = logging.getLogger(__name__)


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


def steps_per_epoch(trainer: Any, total_steps: int) -> float:
    """Optimizer steps per epoch, from the train loader's length when it is known, else
    ``total_steps / trainer.max_epochs`` (ValueError naming ``warmup_steps`` when neither is)."""
    batches = trainer.num_training_batches
    if isinstance(batches, int) or (isinstance(batches, float) and math.isfinite(batches)):
        return max(1.0, math.ceil(batches / trainer.accumulate_grad_batches))
    max_epochs = trainer.max_epochs
    if max_epochs is None or max_epochs <= 0:
        raise ValueError(
            "model.optim.warmup_epochs needs trainer.max_epochs or a sized train loader; "
            "set model.optim.warmup_steps when training by steps"
        )
    return total_steps / max_epochs


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer,
    optim_cfg: OptimConfig | Mapping[str, Any],
    *,
    peak_lr: float,
    global_batch_size: int,
    trainer: Any,
) -> torch.optim.lr_scheduler.LambdaLR:
    """The official per-step schedule as a ``LambdaLR`` over ``trainer``'s optimizer steps.

    Every parameter group's lr (set before this call, e.g. ``peak_lr x lr_scale``) is multiplied
    by ``warmup_cosine(step) / peak_lr``: linear warmup from ``warmup_lr`` over ``warmup_epochs``
    (or ``warmup_steps``), then cosine to ``min_lr``; ``warmup_lr`` and ``min_lr`` are scaled by
    ``global_batch_size / 256`` like the base lr (the official recipes). A warmup longer than a
    run bounded by ``trainer.max_steps`` is shortened to the run with a warning; longer than a
    run bounded by epochs, it is a ValueError naming the key.
    """
    cfg = OptimConfig.of(optim_cfg)
    total_steps = max(1, int(trainer.estimated_stepping_batches))
    warmup_steps = cfg.warmup_steps
    if warmup_steps is None:
        per_epoch = steps_per_epoch(trainer, total_steps)
        warmup_steps = round(float(cfg.warmup_epochs) * per_epoch)
    if warmup_steps > total_steps:
        max_steps = getattr(trainer, "max_steps", -1)
        if max_steps is not None and max_steps > 0 and total_steps == max_steps:
            # a run bounded by trainer.max_steps (a smoke run): the warmup becomes the run
            log.warning(
                "the warmup (%d steps, model.optim.warmup_%s) is longer than this run "
                "(trainer.max_steps %d): the warmup is shortened to %d steps",
                warmup_steps,
                "steps" if cfg.warmup_steps is not None else "epochs",
                max_steps,
                total_steps,
            )
            warmup_steps = total_steps
        else:
            raise ValueError(
                f"model.optim.warmup_epochs ({cfg.warmup_epochs}) / warmup_steps "
                f"({warmup_steps} steps) must not be longer than the training run "
                f"({total_steps} steps, trainer.max_epochs / trainer.max_steps)"
            )
    schedule = partial(
        warmup_cosine,
        peak_lr=peak_lr,
        warmup_steps=int(warmup_steps),
        total_steps=total_steps,
        warmup_lr=scaled_lr(cfg.warmup_lr, global_batch_size),
        min_lr=scaled_lr(cfg.min_lr, global_batch_size),
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step) / peak_lr)


def global_batch(batch_size: int, trainer: Any | None) -> int:
    """Samples per optimizer step over all devices: ``batch_size x world size x accumulation``
    (``batch_size`` alone before a trainer is attached)."""
    if trainer is None:
        return batch_size
    return batch_size * trainer.world_size * trainer.accumulate_grad_batches


def adamw_with_schedule(
    groups: list[dict[str, Any]],
    optim_cfg: OptimConfig | Mapping[str, Any],
    *,
    peak_lr: float,
    global_batch_size: int,
    trainer: Any,
    default_betas: tuple[float, float],
) -> dict[str, Any]:
    """AdamW over ``groups`` (each may carry its own ``lr``) with :func:`warmup_cosine_scheduler`
    stepped every optimizer step, in the form ``configure_optimizers`` returns. On CUDA the
    fused AdamW kernel runs (a few launches per step instead of several per parameter)."""
    cfg = OptimConfig.of(optim_cfg)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(
        groups,
        lr=peak_lr,
        betas=cfg.adam_betas(default_betas),
        eps=cfg.eps,
        fused=True if params and all(p.is_cuda for p in params) else None,
    )
    scheduler = warmup_cosine_scheduler(
        optimizer,
        cfg,
        peak_lr=peak_lr,
        global_batch_size=global_batch_size,
        trainer=trainer,
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
    }
