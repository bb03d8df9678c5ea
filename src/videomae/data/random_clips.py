"""Random clips held in memory: the training step and loop measured without the data path.

:class:`RandomClipDataModule` (``data=random``) serves batches of the configured clip shape made
once at set-up (random uint8 pixels, as the video loaders hand over, and random labels); every
training batch is one of a few such batches, so loading costs nothing but the copy to the
device. Used by ``benchmarks/fsdp_vs_ddp.py`` and for timing ``train.py``'s loop against the
bare model step; nothing learns from it.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from videomae.data.device import FinishOnDevice

__all__ = ["RandomClipDataModule"]


class RandomClipDataModule(FinishOnDevice, L.LightningDataModule):
    """Batches of random clips ``{"video": (B, 3, T, H, W) uint8, "label": (B,), "index": (B,)}``.

    Args:
        num_frames, img_size: the clip shape.
        batch_size: clips per batch (per device).
        num_classes: labels are drawn from ``range(num_classes)``.
        train_batches, val_batches: batches per training / validation epoch.
        distinct_batches: how many different batches are made (and cycled through).
        seed: seed of the values.
        pin_memory: pin the batches (only when a CUDA device is present).
        sampling_rate: not used; accepted so that an experiment that sets it (``experiment=
            k400_pretrain data=random``) composes.
    """

    def __init__(
        self,
        num_frames: int = 16,
        img_size: int = 224,
        batch_size: int = 32,
        num_classes: int = 400,
        train_batches: int = 1000,
        val_batches: int = 4,
        distinct_batches: int = 4,
        seed: int = 0,
        pin_memory: bool = True,
        sampling_rate: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_frames", num_frames),
            ("img_size", img_size),
            ("batch_size", batch_size),
            ("num_classes", num_classes),
            ("train_batches", train_batches),
            ("val_batches", val_batches),
            ("distinct_batches", distinct_batches),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        self.shape = (3, num_frames, img_size, img_size)
        self.batch_size = batch_size
        self.num_classes = num_classes
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.distinct_batches = distinct_batches
        self.seed = seed
        self.pin_memory = pin_memory
        self._bank: list[dict[str, torch.Tensor]] = []

    def setup(self, stage: str | None = None) -> None:
        """Make the distinct batches once."""
        if self._bank:
            return
        generator = torch.Generator().manual_seed(self.seed)
        pin = self.pin_memory and torch.cuda.is_available()
        for b in range(self.distinct_batches):
            batch = {
                "video": torch.randint(
                    0, 256, (self.batch_size, *self.shape), generator=generator, dtype=torch.uint8
                ),
                "label": torch.randint(self.num_classes, (self.batch_size,), generator=generator),
                "index": torch.arange(b * self.batch_size, (b + 1) * self.batch_size),
            }
            self._bank.append({k: v.pin_memory() if pin else v for k, v in batch.items()})

    def _loader(self, batches: int) -> DataLoader:
        self.setup()
        items: list[Any] = [self._bank[i % len(self._bank)] for i in range(batches)]
        return DataLoader(items, batch_size=None, shuffle=False, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        """``train_batches`` batches, cycling through the bank."""
        return self._loader(self.train_batches)

    def val_dataloader(self) -> DataLoader:
        """``val_batches`` batches."""
        return self._loader(self.val_batches)

    def test_dataloader(self) -> DataLoader:
        """As the validation batches."""
        return self._loader(self.val_batches)
