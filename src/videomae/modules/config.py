"""The typed optimizer config of both LightningModules (``model.optim``).

AdamW with a per-step linear warmup and a cosine decay; the learning rates are per 256 clips and
scaled by the global batch. Nothing here imports torch: the config checks read it before any
work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    """``model.optim``.

    Args:
        base_lr: peak learning rate per 256 clips (``peak = base_lr x global batch / 256``).
        weight_decay: AdamW weight decay (not on norms, biases, position tables, mask token).
        warmup_lr: learning rate at step 0, per 256 clips.
        min_lr: learning rate at the end of the cosine, per 256 clips.
        warmup_epochs: linear warmup length in epochs (converted to steps).
        warmup_steps: the warmup in optimizer steps; wins over ``warmup_epochs`` when set.
        betas: AdamW betas; None: the module's default (pretraining ``(0.9, 0.95)``,
            fine-tuning ``(0.9, 0.999)``, as the official recipes).
        eps: AdamW epsilon.
        layer_decay: per-layer lr decay of fine-tuning (1.0: none; pretraining has none).
    """

    base_lr: float
    weight_decay: float
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    betas: tuple[float, float] | None = None
    eps: float = 1e-8
    layer_decay: float = 1.0

    def __post_init__(self) -> None:
        for name in ("base_lr", "weight_decay", "warmup_lr", "min_lr", "warmup_epochs", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"model.optim.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"model.optim.{name} must be >= 0, got {value!r}")
        if self.warmup_steps is not None and (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(
                f"model.optim.warmup_steps must be an int >= 0 or null, got {self.warmup_steps!r}"
            )
        if self.betas is not None:
            betas = tuple(self.betas)
            if len(betas) != 2 or not all(
                isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas
            ):
                raise ValueError(f"model.optim.betas must be two numbers in [0, 1), got {betas}")
            object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"model.optim.layer_decay must be in (0, 1], got {self.layer_decay}")

    @classmethod
    def of(cls, values: Mapping[str, Any] | OptimConfig) -> OptimConfig:
        """The config of ``model.optim`` (a mapping, or a config as it is); an unknown key is a
        ValueError naming it."""
        if isinstance(values, OptimConfig):
            return values
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            valid = ", ".join(sorted(names))
            raise ValueError(f"model.optim: unknown key(s) {', '.join(unknown)} (valid: {valid})")
        return cls(**dict(values))

    def adam_betas(self, default: tuple[float, float]) -> tuple[float, float]:
        """``betas``, or the module's ``default`` when unset."""
        return self.betas if self.betas is not None else default
