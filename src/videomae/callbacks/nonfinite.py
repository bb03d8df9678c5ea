"""The NaN/inf policy: skip a step whose gradients are not finite, stop after too many in a row.

Before every optimizer step (after the gradients are reduced across ranks) the guard computes
the total gradient norm; when it is NaN or inf (a NaN or inf loss on any rank makes it so) the
step is skipped: every gradient is dropped, so AdamW changes neither the weights nor its moments
(the lr schedule moves on). Every rank takes the same decision (under DDP the reduced gradients
are the same on every rank; the decision is reduced as well, for sharded gradients). The count
of skipped steps is logged as ``train/nonfinite_steps``. After ``max_consecutive`` skipped steps
in a row the run stops: the weights (the last finite ones) are saved to
``checkpoints/nonfinite_step_<step>.ckpt`` and :class:`NonFiniteLossError` names the steps.

Under fp16 mixed precision (a ``GradScaler``) the scaler skips such steps itself and lowers its
scale (overflows are routine while it calibrates); the guard then does nothing.

With a fused AdamW (ours on CUDA) the skip is decided on the device, without waiting for it:
the optimizer's ``found_inf`` flag (the one ``GradScaler`` uses) makes the fused kernel leave
weights, moments and step count as they were, and the host reads each step's flag (a
non-blocking copy) at the next step, on every rank alike, and all pending flags at an epoch's
end and at a checkpoint: the warning, the count and the stop come a step later, the weights
kept are the same. Otherwise (the CPU, other optimizers) the host reads the norm at once: one
host-device synchronization per step.

Cost: one small reduction of the gradient norms per optimizer step; ``callbacks.nonfinite=null``
turns the guard off.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import Any

import lightning as L
import torch

from videomae.callbacks.checkpoint import save_atomically
from videomae.callbacks.host_copy import copy_to_host

log = logging.getLogger(__name__)

__all__ = ["NonFiniteGuard", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """Too many optimizer steps in a row had NaN or inf gradients."""


def _total_grad_norm(params: list[torch.Tensor]) -> torch.Tensor | None:
    """The 2-norm of all gradients (NaN or inf when any gradient is), None without gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    device = grads[0].device
    norms = torch._foreach_norm(grads, 2.0, dtype=torch.float32)  # fp16 norms would overflow
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]).float())


class NonFiniteGuard(L.Callback):
    """Skip optimizer steps with NaN/inf gradients; stop after ``max_consecutive`` in a row.

    Args:
        max_consecutive: skipped steps in a row that stop the run (with a checkpoint).
    """

    def __init__(self, max_consecutive: int = 10) -> None:
        super().__init__()
        if isinstance(max_consecutive, bool) or int(max_consecutive) < 1:
            raise ValueError(f"NonFiniteGuard.max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = int(max_consecutive)
        self.skipped = 0
        self.in_a_row = 0
        self.first_of_row: int | None = None
        # device-decided steps whose flag the host has not read yet: (step, epoch, flag, event)
        self._pending: deque[tuple[int, int, torch.Tensor, Any]] = deque()
        self._limit_step: int | None = None  # the step that reached max_consecutive
        self._limit_row: tuple[int, int | None] = (0, None)  # (in a row, first) at that step

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Check the gradients; skip the step when they are not finite."""
        if _has_grad_scaler(trainer):
            return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = _total_grad_norm(params)
        step = trainer.global_step
        if _skips_on_device(optimizer):
            if norm is None:  # no gradient here (e.g. an empty shard): this rank votes finite
                bad = torch.zeros((), device=trainer.strategy.root_device)
            else:
                bad = (~torch.isfinite(norm)).float()
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                # sharded gradients: any rank's shard (no barrier: the host does not wait)
                torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
            optimizer.found_inf = bad  # the fused kernel skips the update where it is 1
            flag, event = copy_to_host(bad)
        else:
            if getattr(optimizer, "found_inf", None) is not None:
                optimizer.found_inf = None  # no stale flag from an earlier step
            finite = True if norm is None else bool(torch.isfinite(norm))
            finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
            if not finite:
                for p in params:
                    p.grad = None
            flag, event = torch.tensor(0.0 if finite else 1.0), None
        self._pending.append((step, trainer.current_epoch, flag, event))
        # on CUDA the previous step's flag, else this one's: every rank reads the same step's
        # flag at the same step, so all of them stop at the same step
        self._read_flags(trainer, keep=0 if event is None else 1)
        pl_module.log("train/nonfinite_steps", float(self.skipped), on_step=True, on_epoch=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Read the flags still on their way (the epoch's count complete; the same point on
        every rank)."""
        self._read_flags(trainer, keep=0)
        pl_module.log("train/nonfinite_steps", float(self.skipped), on_epoch=True)

    def _read_flags(self, trainer: L.Trainer | None, keep: int) -> None:
        """Count the device-decided steps in order, all but the last ``keep``, waiting for each
        flag's copy (a step old: done, unless the device lags that far); with ``trainer``, stop
        the run if ``max_consecutive`` was reached."""
        while len(self._pending) > keep:
            step, epoch, flag, event = self._pending.popleft()
            if event is not None:
                event.synchronize()
            self._count(step, epoch, not bool(flag.item()))
        if self._limit_step is not None and trainer is not None:
            self._stop(trainer, self._limit_step)

    def _count(self, step: int, epoch: int, finite: bool) -> None:
        """Book one optimizer step; note the step that makes ``max_consecutive`` in a row."""
        if finite:
            self.in_a_row = 0
            self.first_of_row = None
            return
        self.skipped += 1
        self.in_a_row += 1
        if self.first_of_row is None:
            self.first_of_row = step
        log.warning(
            "step %d (epoch %d): NaN/inf gradients, step skipped (%d in a row, %d in all)",
            step,
            epoch,
            self.in_a_row,
            self.skipped,
        )
        if self.in_a_row >= self.max_consecutive and self._limit_step is None:
            self._limit_step, self._limit_row = step, (self.in_a_row, self.first_of_row)

    def _stop(self, trainer: L.Trainer, step: int) -> None:
        in_a_row, first = self._limit_row
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        folder = Path(folder or Path(trainer.default_root_dir) / "checkpoints")
        path = folder / f"nonfinite_step_{step:06d}.ckpt"
        save_atomically(trainer, str(path))
        raise NonFiniteLossError(
            f"the gradients were NaN/inf for {in_a_row} optimizer steps in a row (steps "
            f"{first}-{step}, callbacks.nonfinite.max_consecutive="
            f"{self.max_consecutive}); the run stops. The last finite weights are in {path}. "
            "Lower model.optim.base_lr, raise the warmup, or check the data of those steps."
        )

    def state_dict(self) -> dict[str, Any]:
        """The counts, kept in checkpoints so a resumed run continues them."""
        self._read_flags(None, keep=0)  # a stop this reaches comes at the next step
        return {"skipped": self.skipped, "in_a_row": self.in_a_row, "first": self.first_of_row}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the counts of a checkpoint."""
        self.skipped = int(state_dict.get("skipped", 0))
        self.in_a_row = int(state_dict.get("in_a_row", 0))
        self.first_of_row = state_dict.get("first")


def _skips_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` takes a ``found_inf`` flag and skips its update on the device (a
    fused AdamW/Adam: ``GradScaler``'s path for fused optimizers)."""
    return bool(optimizer.defaults.get("fused")) and getattr(
        optimizer, "_step_supports_amp_scaling", False
    )


def _has_grad_scaler(trainer: L.Trainer) -> bool:
    """Whether the precision plugin steps through a ``GradScaler`` (fp16), which skips by itself."""
    return getattr(trainer.precision_plugin, "scaler", None) is not None
