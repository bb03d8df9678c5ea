"""Count and report the broken videos that the datasets replaced, once per epoch.

:class:`videomae.data.datasets.VideoClipDataset` replaces a video it cannot decode by the next
one and records the replaced video's index in the item's ``broken`` field (-1 padded). The
datasets live in DataLoader worker processes, so the batches are the one channel that reaches
the training process: this callback reads ``batch["broken"]``, gathers the indices of all ranks
at the end of each epoch, logs the count (``data/broken_train``, ``data/broken_val``) to every
logger, warns with the paths, and appends them to ``broken_videos.txt`` in the run folder
(``epoch<TAB>stage<TAB>path`` per line), so a long run's broken files can be listed and fixed
afterwards (``videomae-doctor --write-clean`` makes a list without them).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

__all__ = ["BrokenVideoLogger"]


def _gather_counts(counts: Counter[int]) -> Counter[int]:
    """Sum per-rank ``{index: times}`` counters over all ranks (a no-op without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Counter(counts)
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, dict(counts))
    total: Counter[int] = Counter()
    for part in parts:
        total.update(part)
    return total


def _flat(values: list) -> list:
    """The numbers of a nested list (a batch's ``broken`` field: one per clip or per view)."""
    return [v for item in values for v in (_flat(item) if isinstance(item, list) else [item])]


class BrokenVideoLogger(L.Callback):
    """Logs, per epoch, how many broken videos were replaced in training and validation.

    Args:
        filename: file in the run folder (``trainer.default_root_dir``) the paths are appended to.
        max_listed: paths shown in the warning (all of them go to the file).
    """

    def __init__(self, filename: str = "broken_videos.txt", max_listed: int = 20) -> None:
        self.filename = filename
        self.max_listed = int(max_listed)
        self._counts: dict[str, Counter[int]] = {"train": Counter(), "val": Counter()}
        self.totals: dict[str, int] = {"train": 0, "val": 0}
        """Replacements counted over the whole run, per stage."""

    # ------------------------------------------------------------------ collection

    def _collect(self, stage: str, batch: Any) -> None:
        """Count the batch's replaced-video indices (``broken``: a list, as the data modules keep
        it on the host, or a tensor; -1 = none)."""
        broken = batch.get("broken") if isinstance(batch, dict) else None
        if isinstance(broken, torch.Tensor):
            broken = broken.tolist()  # a device tensor makes the host wait: see host_batch
        if not isinstance(broken, list):
            return
        values = [int(v) for v in _flat(broken) if v >= 0]
        if values:
            self._counts[stage].update(values)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._counts["train"].clear()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._counts["val"].clear()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._collect("train", batch)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._collect("val", batch)

    # ------------------------------------------------------------------ reporting

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._report(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._report(trainer, pl_module, "val")

    def _paths(self, trainer: L.Trainer, stage: str, indices: list[int]) -> list[str]:
        """Paths of the videos at ``indices`` of the stage's dataset (the index if unknown)."""
        datamodule = getattr(trainer, "datamodule", None)
        dataset = getattr(datamodule, "train_set" if stage == "train" else "val_set", None)
        records = getattr(dataset, "records", None)
        if records is None:
            return [f"<index {i}>" for i in indices]
        return [str(records[i].path) for i in indices]

    def _report(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        counts = _gather_counts(self._counts[stage])
        replaced = len(counts)  # distinct broken videos met this epoch
        self.totals[stage] += replaced
        pl_module.log(f"data/broken_{stage}", float(replaced), on_epoch=True, sync_dist=False)
        if not replaced or not trainer.is_global_zero:
            return
        indices = sorted(counts)
        paths = self._paths(trainer, stage, indices)
        shown = "\n  ".join(paths[: self.max_listed])
        more = len(paths) - self.max_listed
        out = Path(trainer.default_root_dir) / self.filename
        log.warning(
            "epoch %d: %d broken %s video(s) replaced by the next in the list:\n  %s%s\n"
            "(all paths in %s)",
            trainer.current_epoch,
            len(paths),
            stage,
            shown,
            f"\n  ... and {more} more" if more > 0 else "",
            out,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as f:
            for path in paths:
                f.write(f"{trainer.current_epoch}\t{stage}\t{path}\n")
