"""LightningDataModule of dense video clips read from list files (real or synthetic data sets)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from videomae.data.datasets import ON_ERROR_CHOICES, VideoClipDataset
from videomae.data.lists import VideoRecord, read_list
from videomae.data.transforms import EvalTransform, PretrainTransform

__all__ = ["VideoDataModule"]


def _check_int(key: str, value: Any, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, else ``ValueError`` naming ``data.<key>``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"data.{key} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"data.{key} must be >= {minimum}, got {value}")
    return int(value)


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"data.{key} must be true or false, got {value!r}")
    return value


def _accelerator_available() -> bool:
    """Whether pinned memory can help (pinning without an accelerator only warns)."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


class VideoDataModule(L.LightningDataModule):
    """Dense video clips for pretraining: list files under ``root`` -> batches of clips.

    Batches are dicts: ``video`` float32 ``(B, 3, num_frames, img_size, img_size)`` normalized
    with the ImageNet mean/std, ``label`` int64 ``(B,)``, ``index`` int64 ``(B,)``. Training clips
    come from a random window with multi-scale crop (and flip if ``flip``); validation clips from
    the centered window with a center crop.

    All values are checked at construction (``ValueError`` naming the ``data.<key>``). For a real
    data set (``synthetic`` is ``None``) the root folder and the list files must exist at
    construction, else ``FileNotFoundError`` naming the missing path and ``prepare_hint``. With
    ``synthetic`` set, :meth:`prepare_data` generates the set under ``root`` (if it is not there
    yet) with ``videomae.data.synthetic.ensure_synthetic``.

    Args:
        root: data set folder; relative paths in the lists are relative to it.
        train_list: training list file, relative to ``root`` unless absolute.
        val_list: validation list file (same rule), or ``None`` for no validation.
        num_frames: frames per clip.
        sampling_rate: stride between clip frames.
        img_size: output side length.
        batch_size: clips per batch (per device).
        num_workers: DataLoader worker processes (``0``: load in the main process).
        pin_memory: pin batches (only used when an accelerator is available).
        persistent_workers: keep workers between epochs (only used with ``num_workers > 0``).
        scales: multi-scale crop scales, relative to the short side.
        flip: random horizontal flip in training (off for left/right-sensitive classes).
        decode_threads: decord threads per video (``0``: FFmpeg chooses).
        on_error: broken videos: ``"skip"`` (next video, with a warning) or ``"raise"``.
        synthetic: ``SyntheticSpec`` fields of the generated set, or ``None`` for a real set.
        prepare_hint: how to prepare the data set, added to missing-file errors.
        seed: mixed into every clip's random generator (``None``: 0).
    """

    def __init__(
        self,
        *,
        root: str,
        train_list: str,
        val_list: str | None,
        num_frames: int = 16,
        sampling_rate: int = 4,
        img_size: int = 224,
        batch_size: int = 8,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        flip: bool = True,
        decode_threads: int = 1,
        on_error: str = "skip",
        synthetic: Mapping[str, Any] | None = None,
        prepare_hint: str | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)

        self.num_frames = _check_int("num_frames", num_frames, 1)
        self.sampling_rate = _check_int("sampling_rate", sampling_rate, 1)
        self.img_size = _check_int("img_size", img_size, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.decode_threads = _check_int("decode_threads", decode_threads, 0)
        self.seed = 0 if seed is None else _check_int("seed", seed, 0)
        self.pin_memory = _check_bool("pin_memory", pin_memory)
        self.persistent_workers = _check_bool("persistent_workers", persistent_workers)
        self.flip = _check_bool("flip", flip)
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"data.on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
            raise ValueError(f"data.scales must be a non-empty list of numbers, got {scales!r}")
        for s in scales:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0.0 < s <= 1.0:
                raise ValueError(
                    f"data.scales values must be numbers in (0, 1], got {list(scales)}"
                )
        self.scales = tuple(float(s) for s in scales)
        if synthetic is not None and not isinstance(synthetic, Mapping):
            raise ValueError(f"data.synthetic must be a mapping or null, got {synthetic!r}")
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.prepare_hint = prepare_hint
        for key, value in (("root", root), ("train_list", train_list)):
            if not isinstance(value, (str, Path)) or not str(value):
                raise ValueError(f"data.{key} must be a non-empty path, got {value!r}")
        if val_list is not None and (not isinstance(val_list, (str, Path)) or not str(val_list)):
            raise ValueError(f"data.val_list must be a non-empty path or null, got {val_list!r}")

        self.root = Path(root).expanduser().absolute()
        self.train_list_path = self._resolve(train_list)
        self.val_list_path = self._resolve(val_list) if val_list is not None else None

        if self.synthetic is None:
            self._require(self.root, "data.root: data set folder", folder=True)
            self._require(self.train_list_path, "data.train_list: list file")
            if self.val_list_path is not None:
                self._require(self.val_list_path, "data.val_list: list file")

        self.train_records: list[VideoRecord] | None = None
        self.val_records: list[VideoRecord] | None = None
        self.train_set: VideoClipDataset | None = None
        self.val_set: VideoClipDataset | None = None

    # ----------------------------------------------------------------------------- paths

    def _resolve(self, list_file: str | Path) -> Path:
        path = Path(list_file).expanduser()
        return path if path.is_absolute() else self.root / path

    def _require(self, path: Path, what: str, folder: bool = False) -> None:
        """Raise ``FileNotFoundError`` naming ``path`` (and the prepare hint) if it is missing."""
        exists = path.is_dir() if folder else path.is_file()
        if exists:
            return
        message = f"{what} not found: {path}"
        if self.prepare_hint:
            message += f"\nHow to prepare it: {self.prepare_hint.strip()}"
        elif self.synthetic is not None:
            message += "\nThe synthetic set is generated by prepare_data(); call it first."
        raise FileNotFoundError(message)

    # ----------------------------------------------------------------------------- data

    def prepare_data(self) -> None:
        """Generate the synthetic set under ``root`` if it is configured and not there yet.

        Runs once per node (Lightning calls it on local rank 0 before :meth:`setup`). Does
        nothing for a real data set.
        """
        if self.synthetic is None:
            return
        from videomae.data.synthetic import SyntheticSpec, ensure_synthetic

        ensure_synthetic(self.root, SyntheticSpec(**self.synthetic))

    def _read_lists(self) -> None:
        """Read the list files once; check that the training list has enough videos."""
        if self.train_records is None:
            self._require(self.train_list_path, "data.train_list: list file")
            records = read_list(self.train_list_path, self.root)
            if not records:
                raise ValueError(f"data.train_list: the list file {self.train_list_path} is empty")
            self.train_records = records
        if self.val_records is None and self.val_list_path is not None:
            self._require(self.val_list_path, "data.val_list: list file")
            self.val_records = read_list(self.val_list_path, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read the lists and build the datasets for ``stage`` (``fit``, ``validate``, ...)."""
        self._read_lists()
        assert self.train_records is not None
        if stage in (None, "fit") and self.train_set is None:
            if len(self.train_records) < self.batch_size:
                raise ValueError(
                    f"data.batch_size ({self.batch_size}) is larger than the number of training "
                    f"videos ({len(self.train_records)}) in {self.train_list_path}; with "
                    "drop_last=True no batch would be made"
                )
            self.train_set = VideoClipDataset(
                self.train_records,
                num_frames=self.num_frames,
                sampling_rate=self.sampling_rate,
                transform=PretrainTransform(self.img_size, self.scales, flip=self.flip),
                train=True,
                decode_threads=self.decode_threads,
                on_error=self.on_error,
                seed=self.seed,
            )
        if self.val_records and self.val_set is None:
            self.val_set = VideoClipDataset(
                self.val_records,
                num_frames=self.num_frames,
                sampling_rate=self.sampling_rate,
                transform=EvalTransform(self.img_size),
                train=False,
                decode_threads=self.decode_threads,
                on_error=self.on_error,
                seed=self.seed,
            )

    def _loader(self, dataset: VideoClipDataset, train: bool) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=workers,
            pin_memory=self.pin_memory and _accelerator_available(),
            persistent_workers=self.persistent_workers and workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of training clips; the last incomplete batch is dropped."""
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation clips in list order (all of them); ``[]`` when there is no val list."""
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            return []
        return self._loader(self.val_set, train=False)

    # ----------------------------------------------------------------------------- facts

    @property
    def num_classes(self) -> int:
        """``1 + `` the largest label in the train and val lists.

        Before the synthetic set is generated, its spec's ``num_classes`` (the set has every
        class in both splits).
        """
        pending = self.train_records is None and not self.train_list_path.is_file()
        if pending and self.synthetic is not None:
            from videomae.data.synthetic import SyntheticSpec

            return SyntheticSpec(**self.synthetic).num_classes
        self._read_lists()
        assert self.train_records is not None
        labels = [r.label for r in self.train_records] + [r.label for r in self.val_records or []]
        return max(labels) + 1

    @property
    def num_train_videos(self) -> int:
        """Number of videos in the training list."""
        self._read_lists()
        assert self.train_records is not None
        return len(self.train_records)
