"""Dataset of video clips: record -> frame indices -> decoded frames -> transformed clip(s).

One class serves every stage:

- training: one clip per item from a random window (dense) or random frames per segment (segment
  sampling), augmented by the training transform; with ``num_sample > 1`` the frames are decoded
  once and ``num_sample`` differently augmented clips are returned (repeated augmentation);
- validation: one deterministic view per item (centered window / fixed segment offsets);
- test: every temporal view of the video (``num_views`` evenly spaced windows or segment offsets),
  decoded in one pass, handed to a multi-view transform that also makes the spatial crops.

Broken videos never stop a run unless asked to (``on_error="raise"``): a video that cannot be
decoded, or that has fewer frames than ``min_frames``, is replaced by the next one in the list,
``(i + 1) % len`` (a deterministic rule, so sampling is not skewed the way a random re-draw would
skew it), with a warning naming the file and the cause. Each item carries the indices of the videos
it replaced (``broken``), so the training loop can count and log them per epoch (see
:class:`videomae.callbacks.broken_videos.BrokenVideoLogger`) even though the datasets live in
DataLoader worker processes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from videomae.data.decoding import VideoDecodeError, read_frames
from videomae.data.layout import stack as stack_clips
from videomae.data.lists import VideoRecord
from videomae.data.sampling import (
    SAMPLING_CHOICES,
    dense_indices,
    dense_views,
    segment_indices,
    segment_views,
)
from videomae.data.transforms import TestTransform

__all__ = [
    "ON_ERROR_CHOICES",
    "ClipTooShortError",
    "ClipTransform",
    "VideoClipDataset",
]

ClipTransform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
"""uint8 ``(T, H, W, C)`` frames and a generator -> float ``(C, T, H, W)`` clip (or, for a
multi-view transform, uint8 ``(V_t, T, H, W, C)`` -> float ``(V, C, T, H, W)``)."""

ON_ERROR_CHOICES = ("skip", "raise")


class ClipTooShortError(VideoDecodeError):
    """A video has fewer frames than a clip needs (``min_frames``); treated like a broken file."""


class FrameCache:
    """Decoded videos kept in memory, up to ``max_bytes``.

    For small data sets read many times (the generated sets, a few labeled videos per class):
    each video is decoded whole once and its clips are cut from memory afterwards. The first
    videos that fit are kept; once the budget is full (or for a video larger than it, or one
    that does not decode whole) the others are decoded clip by clip, as without the cache, so a
    set larger than the budget costs no more than no cache. Each DataLoader worker holds its own.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self.full = False
        self._passed: set[tuple[str, int, int | None]] = set()
        self._videos: dict[tuple[str, int, int | None], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._videos)

    def get(self, key: tuple[str, int, int | None]) -> torch.Tensor | None:
        """The frames stored under ``key``, or None."""
        return self._videos.get(key)

    def wants(self, key: tuple[str, int, int | None]) -> bool:
        """Whether a video not in the cache is worth decoding whole to keep it."""
        return not self.full and key not in self._passed

    def pass_over(self, key: tuple[str, int, int | None]) -> None:
        """Never try to keep ``key`` whole again (too large, or it does not decode whole)."""
        self._passed.add(key)

    def put(self, key: tuple[str, int, int | None], frames: torch.Tensor) -> bool:
        """Keep ``frames`` under ``key`` if they fit in what is left; whether they were kept."""
        size = frames.numel() * frames.element_size()
        if size > self.max_bytes:
            self.pass_over(key)
            return False
        if self.bytes + size > self.max_bytes:
            self.full = True
            return False
        self._videos[key] = frames
        self.bytes += size
        return True


class VideoClipDataset(Dataset):
    """Clips of the videos of a list, decoded on demand.

    Sampling (``sampling``):

    - ``"dense"`` (Kinetics style): ``num_frames`` frames, one every ``sampling_rate``, from one
      window (:func:`~videomae.data.sampling.dense_indices`, random start in training, centered
      otherwise; :func:`~videomae.data.sampling.dense_views` at test time);
    - ``"segment"`` (Something-Something style): the video is cut into ``num_frames`` equal segments
      and one frame is taken from each (:func:`~videomae.data.sampling.segment_indices`: random in
      training, fixed offsets otherwise); ``sampling_rate`` is not used.

    Test mode (``num_views > 1``, or a :class:`~videomae.data.transforms.TestTransform`): the
    ``num_views`` temporal views are decoded together (each distinct frame once) and passed to
    the transform as uint8 ``(num_views, T, H, W, C)``; the item's ``video`` is then
    ``(V, C, T, H, W)`` with ``V = num_views x`` the transform's spatial crops.

    Randomness: an item can be asked for by index or by an ``(index, epoch)`` key (what
    :class:`videomae.data.samplers.ResumableSampler` yields with ``with_epoch=True``, as the
    data module's training loader does). A keyed training item draws from a generator seeded by
    ``(seed, epoch, index)``: the same clip whatever the worker, the number of workers or a
    resume, and a new one each epoch. A plain index in training seeds from ``seed``, the index and
    one draw of torch's global generator (seeded per DataLoader worker and epoch, so a seeded run
    repeats). Validation and test items use ``(seed, index)`` only.

    Broken videos: see the module docstring. ``max_tries`` videos in a row failing ends in a
    ``RuntimeError`` naming every file tried (a list that broken is not worth training on).
    Failed paths are also appended to ``self.failures`` (per process: each DataLoader worker has
    its own copy).

    Args:
        records: the videos and labels (from :func:`~videomae.data.lists.read_list`).
        num_frames: frames per clip ``T`` (the number of segments for segment sampling).
        sampling_rate: stride between clip frames (dense sampling).
        transform: ``(frames, rng) -> clip``: ``PretrainTransform``, ``FinetuneTransform``,
            ``EvalTransform`` or ``TestTransform``.
        train: random sampling (training) or deterministic views.
        sampling: ``"dense"`` or ``"segment"``.
        num_views: temporal views per video at test time (1 otherwise).
        num_sample: augmented clips per decoded video in training (repeated augmentation).
        decode_threads: decoder threads per video (``0``: FFmpeg chooses).
        short_side: resize frames at decode time so the short side has this length (``None``:
            decode at the original size).
        backend: decoder, ``"auto"`` (PyAV, decord when PyAV fails), ``"decord"``, ``"pyav"``
            or ``"nvdec"``.
        min_frames: a video with fewer frames is treated as broken (``None``: ``num_frames``);
            longer videos shorter than a window follow the sampling module's short-video rule.
        on_error: ``"skip"`` (replace by the next video) or ``"raise"``.
        seed: mixed into every item's generator.
        max_tries: videos tried per item before giving up when skipping.
        frame_cache_mb: keep up to this many MiB of decoded videos in memory (a
            :class:`FrameCache` per process; 0: none). Each video is then decoded whole once;
            the items are the same as without the cache.
        stack_samples: with ``num_sample > 1``, stack the clips' fields (``False``: lists of
            ``num_sample`` tensors, for a collation that stacks every clip of a batch in one
            copy, as the data module's training loader does).

    Items are dicts: ``video`` uint8 ``(C, T, H, W)`` (``(num_sample, C, T, H, W)`` with repeated
    augmentation, ``(V, C, T, H, W)`` in test mode), with the transform's other per-clip fields (the
    fine-tuning ``erase`` boxes and ``augment`` rows, stacked likewise; without ``stack_samples``
    every per-clip field is a list of ``num_sample`` tensors); ``label`` int64 scalar; ``index``
    int64 scalar (the index of the video actually returned, which differs from the requested one
    after a skip); ``broken`` int64 ``(max_tries - 1,)``: indices of the videos that failed and were
    replaced for this item, padded with -1.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        num_frames: int,
        sampling_rate: int,
        transform: ClipTransform,
        train: bool,
        sampling: str = "dense",
        num_views: int = 1,
        num_sample: int = 1,
        decode_threads: int = 1,
        short_side: int | None = None,
        backend: str = "auto",
        min_frames: int | None = None,
        on_error: str = "skip",
        seed: int = 0,
        max_tries: int = 10,
        frame_cache_mb: float = 0,
        stack_samples: bool = True,
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if sampling not in SAMPLING_CHOICES:
            raise ValueError(f"sampling must be one of {SAMPLING_CHOICES}, got {sampling!r}")
        for name, value, minimum in (
            ("num_frames", num_frames, 1),
            ("sampling_rate", sampling_rate, 1),
            ("num_views", num_views, 1),
            ("num_sample", num_sample, 1),
            ("decode_threads", decode_threads, 0),
            ("max_tries", max_tries, 1),
        ):
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")
        if short_side is not None and short_side < 1:
            raise ValueError(f"short_side must be >= 1 or None, got {short_side}")
        if min_frames is not None and min_frames < 1:
            raise ValueError(f"min_frames must be >= 1 or None, got {min_frames}")
        if frame_cache_mb < 0:
            raise ValueError(f"frame_cache_mb must be >= 0, got {frame_cache_mb}")
        self.records = list(records)
        self.num_frames = int(num_frames)
        self.sampling_rate = int(sampling_rate)
        self.transform = transform
        self.train = bool(train)
        self.sampling = sampling
        self.num_views = int(num_views)
        self.test = self.num_views > 1 or isinstance(transform, TestTransform)
        if self.test and self.train:
            raise ValueError("test views (num_views > 1 or a TestTransform) need train=False")
        self.num_sample = int(num_sample)
        if self.num_sample > 1 and not self.train:
            raise ValueError(f"num_sample={num_sample} (repeated augmentation) needs train=True")
        self.decode_threads = int(decode_threads)
        self.short_side = short_side
        self.backend = backend
        self.min_frames = self.num_frames if min_frames is None else int(min_frames)
        self.on_error = on_error
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self.failures: list[str] = []
        self.cache = FrameCache(int(frame_cache_mb * 2**20)) if frame_cache_mb > 0 else None
        self.stack_samples = bool(stack_samples)

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """Generator of one item (see the class docstring)."""
        if self.train:
            if epoch is not None:
                return np.random.default_rng([self.seed, 1 + epoch, index])
            draw = int(torch.randint(0, 2**62, ()).item())
            return np.random.default_rng([self.seed, index, draw])
        return np.random.default_rng([self.seed, index])

    def frame_indices(self, length: int, rng: np.random.Generator | None) -> np.ndarray:
        """Frame indices of one item for a video of ``length`` frames.

        ``(T,)`` for training (``rng`` given) and validation (``rng=None``); in test mode
        ``(num_views * T,)``, the views one after the other.

        Raises:
            ClipTooShortError: the video has fewer than ``min_frames`` frames.
        """
        if length < self.min_frames:
            raise ClipTooShortError(
                "<video>", f"too short: {length} frames, a clip needs at least {self.min_frames}"
            )
        if self.test:
            if self.sampling == "dense":
                views = dense_views(length, self.num_frames, self.sampling_rate, self.num_views)
            else:
                views = segment_views(length, self.num_frames, self.num_views)
            return views.reshape(-1)
        if self.sampling == "dense":
            return dense_indices(length, self.num_frames, self.sampling_rate, rng)
        return segment_indices(length, self.num_frames, rng)

    def _load(self, index: int, epoch: int | None) -> dict[str, Any]:
        record = self.records[index]
        rng = self._rng(index, epoch)
        sample_rng = rng if self.train else None

        def sampler(length: int) -> np.ndarray:
            return self.frame_indices(length, sample_rng)

        try:
            frames = self._decode(record, sampler)
        except ClipTooShortError as err:  # raised by the sampler, without the file name
            raise ClipTooShortError(record.path, err.cause or str(err)) from None
        if self.test:
            frames = frames.reshape(self.num_views, self.num_frames, *frames.shape[1:])
            item = self._transformed(frames, rng)
        elif self.num_sample > 1:
            clips = [self._transformed(frames, rng) for _ in range(self.num_sample)]
            join = stack_clips if self.stack_samples else list
            item = {key: join([clip[key] for clip in clips]) for key in clips[0]}
        else:
            item = self._transformed(frames, rng)
        item["label"] = torch.tensor(record.label, dtype=torch.int64)
        item["index"] = torch.tensor(index, dtype=torch.int64)
        return item

    def _decode(self, record: VideoRecord, sampler: Callable[[int], np.ndarray]) -> torch.Tensor:
        """The frames ``sampler`` picks from ``record``'s video: decoded, or cut from the cache.

        Through the cache a video's whole range is decoded on first use (the same frames as a
        clip's own decode where the decoder reads both alike, as decord and PyAV do on the
        project's sets; a file only one of them reads whole is kept as that one decodes it); a
        video that fails whole is read clip by clip from then on.
        """

        def decode(pick: Callable[[int], np.ndarray]) -> torch.Tensor:
            return read_frames(
                record.path,
                pick,
                num_threads=self.decode_threads,
                short_side=self.short_side,
                backend=self.backend,
                start=record.start,
                total=record.total,
            )

        if self.cache is None:
            return decode(sampler)
        key = (str(record.path), record.start, record.total)
        video = self.cache.get(key)
        if video is None:
            if not self.cache.wants(key):
                return decode(sampler)
            try:
                video = decode(np.arange)
            except VideoDecodeError:
                self.cache.pass_over(key)
                return decode(sampler)
            self.cache.put(key, video)
        return video[torch.from_numpy(np.asarray(sampler(len(video)), dtype=np.int64))]

    def _transformed(self, frames: torch.Tensor, rng: np.random.Generator) -> dict[str, Any]:
        """The transform's output as an item dict: ``{"video": ...}`` (and ``erase`` from the
        fine-tuning transform)."""
        out = self.transform(frames, rng)
        return dict(out) if isinstance(out, dict) else {"video": out}

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        i, epoch = key if isinstance(key, tuple) else (key, None)
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} videos")
        i %= n
        tried: list[str] = []
        broken = torch.full((max(self.max_tries - 1, 1),), -1, dtype=torch.int64)
        limit = min(self.max_tries, n)
        for attempt in range(limit):
            index = (i + attempt) % n
            try:
                item = self._load(index, epoch)
            except VideoDecodeError as err:
                record = self.records[index]
                self.failures.append(str(record.path))
                if self.on_error == "raise":
                    raise VideoDecodeError(
                        record.path,
                        f"{err.cause or err} (list line {record.line}; data.on_error=raise stops "
                        "at the first broken video, data.on_error=skip skips and counts them)",
                    ) from None
                if attempt < broken.numel():
                    broken[attempt] = index
                tried.append(f"{record.path} ({err.cause or err})")
                then = f"trying index {(index + 1) % n}" if attempt + 1 < limit else "giving up"
                warnings.warn(
                    f"skipping broken video {record.path} (index {index}, list line "
                    f"{record.line}): {err.cause or err}; {then}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            item["broken"] = broken
            return item
        raise RuntimeError(
            f"{len(tried)} videos in a row failed to decode, starting at index {i} "
            f"(on_error='skip' tries up to {self.max_tries}): " + "; ".join(tried)
        )
