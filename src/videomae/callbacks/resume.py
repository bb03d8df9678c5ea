"""Exact mid-epoch resume: a resumable sampler, the callback that fast-forwards it, and the
rule that finds a run's last checkpoint.

What Lightning 2.x does by itself: a checkpoint saved mid-epoch restores the loops' progress
counters (epoch, batch index, global step), the optimizer, the lr scheduler and the callbacks, and
training continues with ``batch_idx`` where it stopped; but a plain ``DataLoader`` restarts its
epoch from the first batch (Lightning warns "resuming from a checkpoint that ended before the
epoch ended"), so the resumed run sees other batches than the unbroken one. Lightning restores a
loader only if it has ``state_dict``/``load_state_dict`` (e.g. torchdata's
``StatefulDataLoader``), and even then not when ``trainer.estimated_stepping_batches`` was read
before the restore (Lightning issue #20550), which ``configure_optimizers`` does for the
schedule. On top of that, the first epoch after a resume iterates a loader made before the
checkpoint was loaded (so with epoch 0's shuffling).

So here the restored progress counters drive the data, not a saved loader state:

- :class:`ResumableSampler` is a ``DistributedSampler`` (Lightning keeps it under DDP instead of
  injecting its own) whose order depends only on ``(seed, epoch)`` and which can skip the first
  samples of its next pass; ``set_epoch`` is passed on to the dataset (if it has one) so per-item
  augmentation can be seeded from ``(seed, epoch, index)``.
- :class:`ResumeDataLoader` (a callback) at ``on_train_start`` of a resumed fit sets the
  sampler's epoch, skips the batches the checkpoint had already trained, and re-creates the
  train loader's iterator, so the next batch is exactly the one the unbroken run would take.

Together with masks seeded by ``(seed, rank, epoch, batch_idx)`` (``PretrainModule``) and
augmentation seeded by ``(seed, epoch, index)`` the resumed run reaches the unbroken run's weights
(``tests/test_resume.py``).

:func:`resolve_ckpt_path` (from :mod:`videomae.checkpoints.files`) is the resume rule of
``videomae.train``.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L

from videomae.checkpoints.files import LAST_CKPT, find_last_checkpoint, resolve_ckpt_path
from videomae.data.samplers import ResumableSampler

log = logging.getLogger(__name__)

__all__ = [
    "LAST_CKPT",
    "ResumableSampler",
    "ResumeDataLoader",
    "find_last_checkpoint",
    "resolve_ckpt_path",
]


def _resumable_samplers(loader: Any) -> list[ResumableSampler]:
    found = []
    for sampler in (
        getattr(loader, "sampler", None),
        getattr(getattr(loader, "batch_sampler", None), "sampler", None),
    ):
        if isinstance(sampler, ResumableSampler) and sampler not in found:
            found.append(sampler)
    return found


class ResumeDataLoader(L.Callback):
    """On a resumed fit, continue the train loader exactly where the checkpoint left it.

    Needs the train loader to use a :class:`ResumableSampler`; with another sampler a mid-epoch
    resume falls back to Lightning's behaviour (the epoch restarts from its first batch), with
    a warning.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Fast-forward the sampler to the restored position and re-create the iterator."""
        if trainer.ckpt_path is None:
            return
        fit_loop = trainer.fit_loop
        combined = fit_loop._combined_loader
        if combined is None or fit_loop._data_fetcher is None:
            return
        done = fit_loop.epoch_loop.batch_progress.current.processed
        total = trainer.num_training_batches
        skip_batches = done if 0 < done < total else 0
        samplers = [(dl, s) for dl in combined.flattened for s in _resumable_samplers(dl)]
        if not samplers:
            if skip_batches:
                log.warning(
                    "resumed mid-epoch with a train loader that has no ResumableSampler: the "
                    "epoch restarts from its first batch (see videomae.callbacks.resume)"
                )
            return
        for loader, sampler in samplers:
            sampler.set_epoch(trainer.current_epoch)
            batch_size = getattr(loader, "batch_size", None) or 1
            sampler.skip(skip_batches * batch_size)
        iter(fit_loop._data_fetcher)  # a fresh iterator: the one made before the restore is stale
        log.info(
            "resumed at epoch %d, batch %d: %d batches of the epoch skipped without loading",
            trainer.current_epoch,
            skip_batches,
            skip_batches,
        )
