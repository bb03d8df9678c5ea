"""A callback for fault tests that run ``train.py`` in subprocesses (importable there through
``PYTHONPATH``): it makes the loss NaN on one rank at chosen steps and records each rank's
weights after every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch


class PoisonRank(L.Callback):
    """NaN loss on rank ``rank`` at global steps ``steps``; writes ``weights_rank<r>.jsonl``
    (step, sum of all weights) into the run folder after every optimizer step."""

    def __init__(self, rank: int, steps: list[int]) -> None:
        self.rank = rank
        self.steps = set(steps)
        self.handle: Any = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step in self.steps:
            self.handle = pl_module.net.register_forward_hook(
                lambda module, inputs, out: (out[0] * float("nan"), out[1])
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        total = float(sum(p.detach().double().sum() for p in pl_module.parameters()))
        path = Path(trainer.default_root_dir) / f"weights_rank{trainer.global_rank}.jsonl"
        with open(path, "a") as f:
            f.write(json.dumps([trainer.global_step, total]) + "\n")


__all__ = ["PoisonRank", "torch"]
