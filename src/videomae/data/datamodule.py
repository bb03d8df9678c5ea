"""LightningDataModule of video clips from list files or folder trees (real or synthetic sets)."""

from __future__ import annotations

import logging
import numbers
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from videomae.data.datasets import ON_ERROR_CHOICES, VideoClipDataset
from videomae.data.decoding import BACKENDS
from videomae.data.device import AUGMENT_ON, FinishOnDevice
from videomae.data.layout import collate
from videomae.data.lists import (
    LIST_FORMATS,
    MISSING_SHOWN,
    VideoRecord,
    data_set_paths,
    folder_classes,
    missing_files,
    per_class_subset,
    read_list,
    require_data_set,
    require_path,
)
from videomae.data.samplers import ResumableSampler
from videomae.data.sampling import SAMPLING_CHOICES
from videomae.data.transforms import (
    EvalTransform,
    FinetuneTransform,
    PretrainTransform,
    TestTransform,
)
from videomae.errors import ConfigError
from videomae.utils.runs import auto_workers, usable_cores

__all__ = ["VideoDataModule"]

log = logging.getLogger(__name__)


def _check_int(key: str, value: Any, minimum: int) -> int:
    """``value`` as an int ``>= minimum``, else ``ValueError`` naming ``data.<key>``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"data.{key} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"data.{key} must be >= {minimum}, got {value}")
    return int(value)


def _check_workers(value: Any) -> int:
    """``data.num_workers``: an int ``>= 0`` (``auto`` is taken before)."""
    if isinstance(value, str):
        raise ConfigError(f"data.num_workers must be an integer >= 0 or 'auto', got {value!r}")
    return _check_int("num_workers", value, 0)


def _check_optional_int(key: str, value: Any, minimum: int) -> int | None:
    """``None``, or ``value`` checked by :func:`_check_int`."""
    return None if value is None else _check_int(key, value, minimum)


def _check_float(key: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, else ``ValueError`` naming ``data.<key>``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ConfigError(f"data.{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _check_range(key: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """A ``[min, max]`` pair of numbers in ``[low, high]`` with ``min <= max``."""
    ok = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 2
    if ok:
        ok = all(not isinstance(v, bool) and isinstance(v, numbers.Real) for v in value)
    if not ok or not low <= value[0] <= value[1] <= high:
        raise ConfigError(
            f"data.{key} must be a pair [min, max] with {low} <= min <= max <= {high}, "
            f"got {value!r}"
        )
    return float(value[0]), float(value[1])


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"data.{key} must be true or false, got {value!r}")
    return value


PREFETCH = 2
"""Batches each loader worker keeps ready (the DataLoader's ``prefetch_factor``)."""


def shm_free_bytes() -> int | None:
    """Free bytes of ``/dev/shm``, where loader workers put their batches (``None`` where there
    is none, e.g. not Linux)."""
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None


def _shm_plan(wanted: int, budget: int, batch: int, shrink: bool) -> tuple[int, int]:
    """``(workers, prefetch_factor)``: ``wanted`` workers, or with ``shrink`` as many as keep
    their prefetched batches and one more (being handed over) within ``budget`` bytes of
    shared memory, down to one worker with one batch ready, then none."""
    fit = max(0, (budget // batch - 1) // PREFETCH)
    if fit >= wanted or not shrink:
        return wanted, PREFETCH
    if fit == 0 and budget // batch >= 2:
        return 1, 1
    return fit, PREFETCH


def _accelerator_available() -> bool:
    """Whether pinned memory can help (pinning without an accelerator only warns)."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


MODE_CHOICES = ("pretrain", "finetune")
"""``pretrain``: multi-scale crop (+ optional flip); ``finetune``: random resized crop, flip,
RandAugment and random erasing, with repeated augmentation (``num_sample``)."""


def _flatten_repeated(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Collate training items; repeated-augmentation items become N rows each.

    With ``num_sample = N > 1`` a batch of ``B`` videos gives ``B * N`` clips (each video's clips
    next to each other) with their labels and indices repeated, as the official code does.
    Items whose per-clip fields are lists of N tensors (``stack_samples=False``, the training
    loader's) are stacked once, straight into the batch; stacked items ``(N, C, T, H, W)`` are
    reshaped.
    """
    per_clip = [key for key, value in batch[0].items() if isinstance(value, list)]
    if per_clip:
        n = len(batch[0][per_clip[0]])
        out = collate([{k: v for k, v in item.items() if k not in per_clip} for item in batch])
        for key in per_clip:  # one copy of every clip into the (shared-memory) batch
            out[key] = collate([clip for item in batch for clip in item[key]])
        out["label"] = out["label"].repeat_interleave(n)
        out["index"] = out["index"].repeat_interleave(n)
        return out
    out = collate(batch)
    video = out["video"]
    if video.ndim == 6:
        b, n = video.shape[:2]
        out["video"] = video.reshape(b * n, *video.shape[2:])
        for key in ("erase", "augment"):  # per-clip rows drawn by the workers
            if key in out:
                out[key] = out[key].reshape(b * n, -1)
        out["label"] = out["label"].repeat_interleave(n)
        out["index"] = out["index"].repeat_interleave(n)
    return out


class VideoDataModule(FinishOnDevice, L.LightningDataModule):
    """Video clips for pretraining, fine-tuning, validation and multi-view test.

    Videos (files or folders of frames) come from list files in the official VideoMAE format
    (``path label``), VideoMAE V2 lists (``path start total``) or folder-per-class trees, all read
    by :func:`videomae.data.lists.read_list` (``list_format``); relative paths are relative to
    ``root``.

    Batches are dicts with ``video`` uint8, ``label`` int64, ``index`` int64 (the video's
    position in its list) and ``broken`` (indices of broken videos replaced for each item, -1
    padded); the LightningModules normalize ``video`` on the device
    (:func:`videomae.data.device.finish_batch`):

    - training: ``video`` uint8 ``(B, 3, T, S, S)`` (``B = batch_size x num_sample``; the clips
      of one video are adjacent), ``mode="pretrain"``: multi-scale crop (and flip if ``flip``);
      ``mode="finetune"``: random resized crop, flip if ``flip``, RandAugment, and ``erase``
      int64 ``(B, 6)``: the random-erasing boxes the device applies after normalizing; with
      ``rand_augment_on="device"`` RandAugment and the flip are left to the device, drawn in
      ``augment`` float64 ``(B, 4 + 2 n)`` (:func:`videomae.data.device.augment_row`);
    - validation: one view per video (centered window / fixed segments, center crop), same shape;
    - test (``test_list``, or the validation list when it is ``None``): every view,
      ``video`` ``(B, V, 3, T, S, S)`` with ``V = test_num_clips x test_num_crops``
      (temporal-major), batches of ``test_batch_size`` videos.

    ``T = num_frames``, ``S = img_size``; the device normalizes with the ImageNet mean/std.
    ``sampling="dense"`` takes one frame every ``sampling_rate`` from a window (Kinetics style);
    ``"segment"`` one frame per segment (Something-Something style).

    All values are checked at construction (``ValueError`` naming the ``data.<key>``). For a real
    data set (``synthetic`` is ``None``) the root folder and the list files must exist at
    construction, else ``FileNotFoundError`` naming the missing path and ``prepare_hint``. Videos
    named by a list but missing on disk are found when the list is read (one message with the
    count and the first paths): with ``on_error="skip"`` they are left out with a warning, with
    ``"raise"`` it is an error. With ``synthetic`` set, :meth:`prepare_data` generates the set
    under ``root`` (if it is not there yet) with ``videomae.data.synthetic.ensure_synthetic``.

    Args:
        root: data set folder; relative paths in the lists are relative to it.
        train_list: training list file or folder tree, relative to ``root`` unless absolute.
        val_list: validation list (same rule), or ``None`` for no validation.
        test_list: test list (same rule), or ``None`` to test on the validation list.
        list_format: ``auto``, ``videomae``, ``videomae_v2`` or ``folders``.
        label_names: file with one class name per line (e.g. ``labels.txt``), relative to
            ``root`` unless absolute; ``None``: folder-tree class names, else no names.
        num_classes: number of classes; ``None``: one more than the largest label in the lists.
        mode: ``pretrain`` or ``finetune`` (the training augmentation).
        sampling: ``dense`` or ``segment``.
        num_frames: frames per clip (segments for segment sampling).
        sampling_rate: stride between clip frames (dense sampling).
        img_size: output side length.
        batch_size: videos per training/validation batch (per device).
        test_batch_size: videos per test batch (``None``: ``batch_size``).
        num_workers: DataLoader worker processes per training process (``0``: load in the
            process itself), or ``"auto"``: a core each of the process's share of the machine,
            less one for the process, at most 16 (:func:`videomae.utils.runs.auto_workers`),
            and no more than ``/dev/shm`` holds the batches of (:meth:`_loader_plan`).
        pin_memory: pin batches (only used when an accelerator is available).
        persistent_workers: keep workers between epochs (only used with ``num_workers > 0``).
        scales: multi-scale crop scales, relative to the short side (pretraining).
        flip: random horizontal flip in training (off for left/right-sensitive classes, SSv2).
        train_scale: random resized crop area range (fine-tuning).
        train_ratio: random resized crop aspect-ratio range (fine-tuning).
        rand_augment: timm RandAugment config string, or ``None`` (fine-tuning).
        reprob: random erasing probability (fine-tuning).
        rand_augment_on: ``workers`` or ``device`` (fine-tuning): where RandAugment and the
            flip run; ``device``: the workers draw them and the device applies them after the
            copy, with the same pixels (frees the workers, costs the step small kernels).
        num_sample: augmented clips per decoded video in training (repeated augmentation).
        test_num_clips: temporal views per test video.
        test_num_crops: spatial crops per temporal view at test time.
        decode_threads: decoder threads per video (``0``: FFmpeg chooses).
        short_side: resize frames at decode time to this short side (``None``: original size).
        frame_cache_mb: keep up to this many MiB of decoded videos in memory, per dataset and
            loading process (0: none): for small sets read many times, each video is decoded
            once (:class:`~videomae.data.datasets.FrameCache`; training and validation only).
        backend: ``auto`` (PyAV, then decord when PyAV fails), ``decord``, ``pyav`` or
            ``nvdec`` (the GPU's video decoder; ``auto`` where there is none; workers spawned).
        min_frames: videos with fewer frames are broken (``None``: ``num_frames``).
        on_error: broken videos: ``"skip"`` (next video, with a warning) or ``"raise"``.
        max_tries: videos tried in a row for one item before the run stops.
        synthetic: ``SyntheticSpec`` fields of the generated set, or ``None`` for a real set.
        prepare_hint: how to prepare the data set, added to missing-file errors.
        seed: mixed into every clip's random generator (``None``: 0).
        labeled_per_class: train on this many videos of each class only (drawn with
            ``subset_seed`` from the training list; validation and test lists untouched): a
            label-efficiency run. ``None``: the whole list.
        subset_seed: the draw of ``labeled_per_class`` (the same subset for the same seed).
    """

    def __init__(
        self,
        *,
        root: str,
        train_list: str,
        val_list: str | None,
        test_list: str | None = None,
        list_format: str = "auto",
        label_names: str | None = None,
        num_classes: int | None = None,
        mode: str = "pretrain",
        sampling: str = "dense",
        num_frames: int = 16,
        sampling_rate: int = 4,
        img_size: int = 224,
        batch_size: int = 8,
        test_batch_size: int | None = None,
        num_workers: int | str = "auto",
        pin_memory: bool = True,
        persistent_workers: bool = True,
        scales: Sequence[float] = (1.0, 0.875, 0.75, 0.66),
        flip: bool = True,
        train_scale: Sequence[float] = (0.08, 1.0),
        train_ratio: Sequence[float] = (0.75, 4.0 / 3.0),
        rand_augment: str | None = "rand-m7-n4-mstd0.5-inc1",
        reprob: float = 0.25,
        rand_augment_on: str = "workers",
        num_sample: int = 1,
        test_num_clips: int = 1,
        test_num_crops: int = 1,
        decode_threads: int = 1,
        short_side: int | None = None,
        frame_cache_mb: float = 0,
        backend: str = "auto",
        min_frames: int | None = None,
        on_error: str = "skip",
        max_tries: int = 10,
        synthetic: Mapping[str, Any] | None = None,
        prepare_hint: str | None = None,
        seed: int | None = 0,
        labeled_per_class: int | None = None,
        subset_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)

        self.num_frames = _check_int("num_frames", num_frames, 1)
        self.sampling_rate = _check_int("sampling_rate", sampling_rate, 1)
        self.img_size = _check_int("img_size", img_size, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.test_batch_size = _check_optional_int("test_batch_size", test_batch_size, 1)
        self.num_workers: int | str = (
            "auto" if num_workers == "auto" else _check_workers(num_workers)
        )
        self.decode_threads = _check_int("decode_threads", decode_threads, 0)
        self.num_sample = _check_int("num_sample", num_sample, 1)
        self.test_num_clips = _check_int("test_num_clips", test_num_clips, 1)
        self.test_num_crops = _check_int("test_num_crops", test_num_crops, 1)
        self.short_side = _check_optional_int("short_side", short_side, 1)
        self.frame_cache_mb = _check_float("frame_cache_mb", frame_cache_mb, 0.0, float("inf"))
        self.min_frames = _check_optional_int("min_frames", min_frames, 1)
        self.max_tries = _check_int("max_tries", max_tries, 1)
        self.num_classes_config = _check_optional_int("num_classes", num_classes, 1)
        self.seed = 0 if seed is None else _check_int("seed", seed, 0)
        self.labeled_per_class = _check_optional_int("labeled_per_class", labeled_per_class, 1)
        self.subset_seed = _check_int("subset_seed", subset_seed, 0)
        self.pin_memory = _check_bool("pin_memory", pin_memory)
        self.persistent_workers = _check_bool("persistent_workers", persistent_workers)
        self.flip = _check_bool("flip", flip)
        for key, value, choices in (
            ("on_error", on_error, ON_ERROR_CHOICES),
            ("mode", mode, MODE_CHOICES),
            ("sampling", sampling, SAMPLING_CHOICES),
            ("backend", backend, BACKENDS),
            ("list_format", list_format, LIST_FORMATS),
            ("rand_augment_on", rand_augment_on, AUGMENT_ON),
        ):
            if value not in choices:
                raise ConfigError(f"data.{key} must be one of {choices}, got {value!r}")
        self.on_error = on_error
        self.mode = mode
        self.sampling = sampling
        self.backend = backend
        self.list_format = list_format
        self.rand_augment_on = rand_augment_on
        if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
            raise ConfigError(f"data.scales must be a non-empty list of numbers, got {scales!r}")
        for s in scales:
            if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0.0 < s <= 1.0:
                raise ConfigError(
                    f"data.scales values must be numbers in (0, 1], got {list(scales)}"
                )
        self.scales = tuple(float(s) for s in scales)
        self.train_scale = _check_range("train_scale", train_scale, 1e-6, 1.0)
        self.train_ratio = _check_range("train_ratio", train_ratio, 1e-3, 1e3)
        self.reprob = _check_float("reprob", reprob, 0.0, 1.0)
        if rand_augment is not None and (not isinstance(rand_augment, str) or not rand_augment):
            raise ConfigError(
                f"data.rand_augment must be a timm RandAugment string such as "
                f"'rand-m7-n4-mstd0.5-inc1', or null; got {rand_augment!r}"
            )
        self.rand_augment = rand_augment
        if synthetic is not None and not isinstance(synthetic, Mapping):
            raise ConfigError(f"data.synthetic must be a mapping or null, got {synthetic!r}")
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.prepare_hint = prepare_hint
        for key, value in (("root", root), ("train_list", train_list)):
            if not isinstance(value, (str, Path)) or not str(value):
                raise ConfigError(f"data.{key} must be a non-empty path, got {value!r}")
        for key, value in (
            ("val_list", val_list),
            ("test_list", test_list),
            ("label_names", label_names),
        ):
            if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
                raise ConfigError(f"data.{key} must be a non-empty path or null, got {value!r}")

        lists = {
            "train_list": train_list,
            "val_list": val_list,
            "test_list": test_list,
            "label_names": label_names,
        }
        self.root, paths = data_set_paths(root, lists)
        self.train_list_path: Path = paths["train_list"]  # type: ignore[assignment]
        self.val_list_path = paths["val_list"]
        self.test_list_path = paths["test_list"]
        self.label_names_path = paths["label_names"]
        if self.synthetic is None:
            require_data_set(root, lists, prepare_hint)

        self.train_records: list[VideoRecord] | None = None
        self.val_records: list[VideoRecord] | None = None
        self.test_records: list[VideoRecord] | None = None
        self._class_names: list[str] | None = None
        self._folder_classes: list[str] | None = None
        self.train_set: VideoClipDataset | None = None
        self.val_set: VideoClipDataset | None = None
        self.test_set: VideoClipDataset | None = None

    # ----------------------------------------------------------------------------- paths

    def _require(self, path: Path, what: str) -> None:
        """:func:`~videomae.data.lists.require_path` with this data set's preparation hint."""
        hint = self.prepare_hint
        if hint is None and self.synthetic is not None:
            hint = "the synthetic set is generated by prepare_data(); call it first."
        require_path(path, what, hint)

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

    def _read(self, key: str, path: Path) -> list[VideoRecord]:
        """Read one list, check its labels, and deal with videos missing on disk."""
        self._require(path, f"data.{key}: list file")
        if (
            path.is_dir()
            and self._folder_classes is None
            and self.list_format in ("auto", "folders")
        ):
            tree = self.train_list_path if self.train_list_path.is_dir() else path
            self._folder_classes = folder_classes(tree)
        records = read_list(path, self.root, self.list_format, classes=self._folder_classes)
        limit = self.num_classes_config
        if limit is not None:
            for record in records:
                if record.label >= limit:
                    raise ConfigError(
                        f"data.{key}: {path}:{record.line}: label {record.label} is not below "
                        f"data.num_classes={limit}"
                    )
        missing = missing_files(records)
        if missing:
            shown = "\n  ".join(str(r.path) for r in missing[:MISSING_SHOWN])
            more = (
                f"\n  ... and {len(missing) - MISSING_SHOWN} more"
                if len(missing) > MISSING_SHOWN
                else ""
            )
            message = (
                f"data.{key}: {len(missing)} of {len(records)} videos named in {path} are "
                f"missing on disk:\n  {shown}{more}"
            )
            if self.on_error == "raise":
                raise FileNotFoundError(message)
            warnings.warn(
                message + "\nThey are left out (data.on_error=raise makes this an error).",
                RuntimeWarning,
                stacklevel=2,
            )
            gone = {id(r) for r in missing}
            records = [r for r in records if id(r) not in gone]
        return records

    def _read_lists(self) -> None:
        """Read the list files once; check that the training list has videos."""
        if self.train_records is None:
            records = self._read("train_list", self.train_list_path)
            if not records:
                raise ConfigError(
                    f"data.train_list: the list {self.train_list_path} has no (existing) videos"
                )
            if self.labeled_per_class is not None:
                records = per_class_subset(records, self.labeled_per_class, self.subset_seed)
                log.info(
                    "data.labeled_per_class=%d: training on %d of the training list's videos "
                    "(subset_seed %d)",
                    self.labeled_per_class,
                    len(records),
                    self.subset_seed,
                )
            self.train_records = records
        if self.val_records is None and self.val_list_path is not None:
            self.val_records = self._read("val_list", self.val_list_path)

    def _read_test_list(self) -> list[VideoRecord]:
        """The test records: ``test_list``, else the validation list."""
        if self.test_records is None:
            self._read_lists()
            if self.test_list_path is not None:
                self.test_records = self._read("test_list", self.test_list_path)
            elif self.val_records is not None:
                self.test_records = self.val_records
            else:
                raise ConfigError(
                    "data.test_list and data.val_list are both null: there is nothing to test on"
                )
        return self.test_records

    def _dataset(self, records: list[VideoRecord], stage: str) -> VideoClipDataset:
        """The dataset of one stage (``train``, ``val`` or ``test``) with its transform."""
        if stage == "train":
            if self.mode == "pretrain":
                transform = PretrainTransform(self.img_size, self.scales, flip=self.flip)
            else:
                transform = FinetuneTransform(
                    self.img_size,
                    scale=self.train_scale,
                    ratio=self.train_ratio,
                    flip=self.flip,
                    rand_augment=self.rand_augment,
                    reprob=self.reprob,
                    rand_augment_on=self.rand_augment_on,
                )
        elif stage == "val":
            transform = EvalTransform(self.img_size)
        else:
            transform = TestTransform(self.img_size, num_crops=self.test_num_crops)
        return VideoClipDataset(
            records,
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            transform=transform,
            train=stage == "train",
            sampling=self.sampling,
            num_views=self.test_num_clips if stage == "test" else 1,
            num_sample=self.num_sample if stage == "train" else 1,
            decode_threads=self.decode_threads,
            short_side=self.short_side,
            # the test reads each video once: nothing to keep
            frame_cache_mb=self.frame_cache_mb if stage != "test" else 0,
            backend=self.backend,
            min_frames=self.min_frames,
            on_error=self.on_error,
            seed=self.seed,
            max_tries=self.max_tries,
            stack_samples=stage != "train",  # _flatten_repeated stacks the clips once
        )

    def setup(self, stage: str | None = None) -> None:
        """Read the lists and build the datasets for ``stage`` (``fit``, ``validate``, ...)."""
        self._read_lists()
        assert self.train_records is not None
        if stage in (None, "fit") and self.train_set is None:
            trainer = self._trainer_or_none()
            world = trainer.world_size if trainer is not None else 1
            if len(self.train_records) // world < self.batch_size:
                raise ConfigError(
                    f"data.batch_size ({self.batch_size}) is larger than the number of training "
                    f"videos per process ({len(self.train_records)} in {self.train_list_path} "
                    f"over {world} process(es)); with drop_last=True no batch would be made"
                )
            self.train_set = self._dataset(self.train_records, "train")
        if self.val_records and self.val_set is None:
            self.val_set = self._dataset(self.val_records, "val")
        if stage in (None, "test") and self.test_set is None:
            self.test_set = self._dataset(self._read_test_list(), "test")

    def _loader(self, dataset: VideoClipDataset, stage: str) -> DataLoader:
        train = stage == "train"
        workers, prefetch = self._loader_plan(stage)
        batch_size = self.batch_size
        if stage == "test" and self.test_batch_size is not None:
            batch_size = self.test_batch_size
        sampler = None
        if train:
            # order from (seed, epoch) and items seeded by (seed, epoch, index): a run resumed
            # mid-epoch continues with exactly the batches of the unbroken run
            # (videomae.callbacks.resume); a DistributedSampler, so Lightning keeps it under DDP
            trainer = self._trainer_or_none()
            sampler = ResumableSampler(
                dataset,
                num_replicas=trainer.world_size if trainer is not None else 1,
                rank=trainer.global_rank if trainer is not None else 0,
                shuffle=True,
                seed=self.seed,
                drop_last=True,
                with_epoch=True,
            )
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=workers,
            pin_memory=self.pin_memory and _accelerator_available(),
            persistent_workers=self.persistent_workers and workers > 0,
            collate_fn=_flatten_repeated if train else collate,
            # NVDEC needs CUDA in the workers, which a fork of a process using CUDA cannot have
            multiprocessing_context="spawn" if self.backend == "nvdec" and workers > 0 else None,
            prefetch_factor=prefetch if workers > 0 else None,
        )

    def _batch_bytes(self, stage: str) -> int:
        """Bytes of one uint8 batch of ``stage``'s clips (what a worker puts in shared memory)."""
        videos, clips = self.batch_size, 1
        if stage == "train":
            clips = self.num_sample
        elif stage == "test":
            videos = self.test_batch_size or self.batch_size
            clips = self.test_num_clips * self.test_num_crops
        return videos * clips * 3 * self.num_frames * self.img_size**2

    def _fitting(self) -> bool:
        """Whether the attached trainer is fitting (training and validation loaders both live)."""
        trainer = self._trainer_or_none()
        return trainer is not None and getattr(trainer.state, "fn", None) == "fit"

    def _loader_plan(self, stage: str) -> tuple[int, int]:
        """``(workers, prefetch_factor)`` of ``stage``'s loader: ``num_workers``, with ``auto``
        worked out for this process and what the shared memory holds, checked against it.

        A worker hands its batches over in shared memory (``/dev/shm``), up to ``prefetch``
        each, and the ranks of a node share it; while fitting, validation (which may run in the
        middle of a training epoch) gets what the training loader leaves. ``auto`` takes no
        more workers than fit, down to one with one batch ready, then none (load in the
        process: no shared memory), with a warning; a set count that does not fit warns, and
        one whose single batch does not fit raises, before any work (a worker that runs out
        fails with "unable to allocate shared memory ... No space left on device", or a bus
        error).
        """
        trainer = self._trainer_or_none()
        processes = trainer.num_devices if trainer is not None else 1
        auto = self.num_workers == "auto"
        wanted = auto_workers(processes) if auto else int(self.num_workers)
        free = shm_free_bytes()
        workers, prefetch = wanted, PREFETCH
        if wanted and free is not None:
            workers, prefetch = self._check_shm(stage, wanted, auto, free, processes)
        if auto and self._first_time(("auto", stage, workers)):
            log.info(
                "data.num_workers=auto: %d loader worker%s for %s per process (%d usable cores, "
                "%d process%s on this node%s)",
                workers,
                "" if workers == 1 else "s",
                stage,
                usable_cores(),
                processes,
                "" if processes == 1 else "es",
                "; limited by /dev/shm" if workers < wanted else "",
            )
        return workers, prefetch

    def _check_shm(
        self, stage: str, wanted: int, auto: bool, free: int, processes: int
    ) -> tuple[int, int]:
        """:meth:`_loader_plan`'s shared-memory part: ``(workers, prefetch_factor)`` that fit
        ``free`` bytes of ``/dev/shm`` (``auto``), or ``wanted`` after a warning or an error."""
        batch = self._batch_bytes(stage)
        share = free // processes
        budget = share
        if stage == "val" and self._fitting():
            train_batch = self._batch_bytes("train")
            train, prefetch = _shm_plan(wanted, share, train_batch, auto)
            if train:
                budget = max(0, share - (train * prefetch + 1) * train_batch)
        workers, prefetch = _shm_plan(wanted, budget, batch, auto)
        room = (
            f"/dev/shm has {free / 2**20:.1f} MiB free for {processes} process"
            f"{'' if processes == 1 else 'es'}, {budget / 2**20:.1f} MiB of it for the {stage} "
            f"loader; a {stage} batch takes {batch / 2**20:.1f} MiB, up to {PREFETCH} a worker"
        )
        keys = {
            "train": "data.batch_size or data.num_sample",
            "val": "data.batch_size",
            "test": "data.test_batch_size (or the views, data.test_num_clips x test_num_crops)",
        }[stage]
        advice = f"enlarge /dev/shm (e.g. docker run --shm-size=16g) or lower {keys}"
        if auto and workers < wanted and self._first_time(("shm", stage, workers)):
            log.warning(
                "data.num_workers=auto: %d loader worker%s for %s instead of %d: %s (%s)",
                workers,
                "" if workers == 1 else "s",
                stage,
                wanted,
                room,
                advice,
            )
        elif not auto and share < batch:  # not even alone
            raise ConfigError(
                f"data.num_workers={wanted}: no {stage} batch fits in shared memory: {room}; "
                f"{advice}, or set data.num_workers=0 (load in the process)"
            )
        elif (
            not auto
            and (budget // batch - 1) // PREFETCH < wanted
            and self._first_time(("shm", stage, wanted))
        ):
            warnings.warn(
                f"data.num_workers={wanted} may exhaust shared memory ({room}); a worker "
                'that runs out fails ("No space left on device", or a bus error): '
                f"{advice}, or lower data.num_workers",
                RuntimeWarning,
                stacklevel=2,
            )
        return workers, prefetch

    def _first_time(self, key: tuple) -> bool:
        """Whether ``key`` is new to this data module (for messages given once)."""
        seen = self.__dict__.setdefault("_said", set())
        if key in seen:
            return False
        seen.add(key)
        return True

    def _trainer_or_none(self) -> L.Trainer | None:
        """The attached trainer, if any (the data module also works on its own)."""
        try:
            return self.trainer
        except RuntimeError:
            return None

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of training clips; the last incomplete batch is dropped.

        The order is a permutation drawn from ``(seed, epoch)``, sharded over the data-parallel
        ranks (each rank a different share), by a
        :class:`~videomae.data.samplers.ResumableSampler`; the trainer sets its epoch.
        """
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return self._loader(self.train_set, "train")

    def val_dataloader(self) -> DataLoader | list:
        """Validation clips in list order (all of them); ``[]`` when there is no val list."""
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            return []
        return self._loader(self.val_set, "val")

    def test_dataloader(self) -> DataLoader:
        """Every view of every test video, in list order."""
        if self.test_set is None:
            self.setup("test")
        assert self.test_set is not None
        return self._loader(self.test_set, "test")

    # ----------------------------------------------------------------------------- facts

    @property
    def num_classes(self) -> int:
        """``data.num_classes`` if set, else ``1 + `` the largest label in the train/val lists.

        Before the synthetic set is generated, its spec's ``num_classes`` (the set has every
        class in both splits).
        """
        if self.num_classes_config is not None:
            return self.num_classes_config
        pending = self.train_records is None and not self.train_list_path.exists()
        if pending and self.synthetic is not None:
            from videomae.data.synthetic import SyntheticSpec

            return SyntheticSpec(**self.synthetic).num_classes
        self._read_lists()
        assert self.train_records is not None
        labels = [r.label for r in self.train_records] + [r.label for r in self.val_records or []]
        if max(labels) < 0:
            raise ConfigError(
                f"data.train_list: {self.train_list_path} has no class labels (an unlabeled "
                "VideoMAE V2 list); set data.num_classes or use a labeled list"
            )
        return max(labels) + 1

    @property
    def class_names(self) -> list[str] | None:
        """Class names by label: from ``label_names``, else the folder tree's classes, else None."""
        if self._class_names is None:
            if self.label_names_path is not None:
                self._require(self.label_names_path, "data.label_names: file")
                text = self.label_names_path.read_text(encoding="utf-8")
                self._class_names = [line.strip() for line in text.splitlines() if line.strip()]
            else:
                self._read_lists()
                self._class_names = self._folder_classes
        return None if self._class_names is None else list(self._class_names)

    @property
    def num_train_videos(self) -> int:
        """Number of videos in the training list."""
        self._read_lists()
        assert self.train_records is not None
        return len(self.train_records)
