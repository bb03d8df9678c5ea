"""Checkpoint writes that a kill cannot corrupt.

:class:`AtomicModelCheckpoint` is Lightning's ``ModelCheckpoint`` with one change: each
checkpoint is written under ``<name>.partial`` (a file, or the directory of shards that
``FSDPStrategy(state_dict_type="sharded")`` writes) and moved into place by rank zero once every
rank has finished writing. A process killed while writing leaves the previous checkpoint
readable:

- a file replaces the old one with one ``os.replace`` (atomic on POSIX);
- a directory cannot replace a non-empty one in one step: the old one is first renamed to
  ``<name>.old``, the new one renamed into place, then ``<name>.old`` removed. A kill between
  the two renames leaves ``<name>.old`` (complete) and no ``<name>``:
  :func:`videomae.callbacks.resume.find_last_checkpoint` then resumes from ``<name>.old``.

A stale ``<name>.partial`` from a killed write is removed before the next write.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any
from weakref import proxy

from lightning.pytorch.callbacks import ModelCheckpoint

from videomae.checkpoints.files import OLD, PARTIAL

log = logging.getLogger(__name__)

__all__ = [
    "OLD",
    "PARTIAL",
    "AtomicModelCheckpoint",
    "save_atomically",
    "swap_into_place",
]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or every file of a directory) to disk."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (renames) to disk."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def swap_into_place(partial: str | Path, final: str | Path) -> None:
    """Move the finished checkpoint ``partial`` to ``final``, replacing what is there, such that
    a kill at any moment leaves a complete checkpoint at ``final`` or at ``final + OLD``."""
    partial, final = Path(partial), Path(final)
    _fsync(partial)
    if partial.is_dir() or final.is_dir():
        old = final.with_name(final.name + OLD)
        if final.exists():  # else ``old`` may be the only complete checkpoint: keep it for now
            _remove(old)
            os.replace(final, old)
        os.replace(partial, final)
        _fsync_dir(final.parent)
        _remove(old)
    else:
        os.replace(partial, final)
        _fsync_dir(final.parent)


def save_atomically(trainer: Any, filepath: str, weights_only: bool = False) -> None:
    """``trainer.save_checkpoint(filepath)`` through ``<filepath>.partial`` (see the module
    docstring). Every rank calls it, as ``trainer.save_checkpoint``."""
    partial = filepath + PARTIAL
    if trainer.is_global_zero:
        _remove(Path(partial))
    trainer.strategy.barrier("save_atomically.clean")
    trainer.save_checkpoint(partial, weights_only)  # every rank writes; ends in a barrier
    if trainer.is_global_zero:
        swap_into_place(partial, filepath)
    trainer.strategy.barrier("save_atomically.swap")


class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose every write (``last.ckpt``, ``epoch_XXX.ckpt``, the best one)
    goes to ``<name>.partial`` first and is moved into place when complete (see the module
    docstring). Takes ``ModelCheckpoint``'s arguments."""

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        """``ModelCheckpoint._save_checkpoint`` through :func:`save_atomically`; the loggers
        hear of the checkpoint once it is in place."""
        save_atomically(trainer, filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))
