"""Dataset of dense video clips: record -> frame indices -> decoded frames -> transformed clip."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from videomae.data.decoding import VideoDecodeError, read_frames
from videomae.data.lists import VideoRecord
from videomae.data.sampling import dense_indices

__all__ = ["ON_ERROR_CHOICES", "ClipTransform", "VideoClipDataset"]

ClipTransform = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
"""uint8 ``(T, H, W, C)`` frames and a generator -> float ``(C, T, H, W)`` clip."""

ON_ERROR_CHOICES = ("skip", "raise")


class VideoClipDataset(Dataset):
    """One dense clip per video, decoded on demand.

    Item ``i`` decodes ``num_frames`` frames, one every ``sampling_rate``, from video ``i``: from a
    random window in training, from the centered window otherwise (see
    :func:`~videomae.data.sampling.dense_indices`), then applies ``transform``.

    Randomness: in training each call seeds a fresh ``numpy`` generator from ``seed``, the index
    and one draw of torch's global generator. torch's generator is seeded per DataLoader worker
    and re-seeded every epoch by the DataLoader (and by Lightning's ``seed_everything(seed,
    workers=True)``), so clips differ across epochs and workers yet a seeded run repeats exactly.
    Validation items use a generator seeded from ``seed`` and the index only: the same clip every
    time.

    Broken videos: with ``on_error="skip"`` a video that fails to decode
    (:class:`~videomae.data.decoding.VideoDecodeError`) is reported with a warning and replaced by
    the next one, ``(i + 1) % len``, up to ``max_tries`` videos in all; then a ``RuntimeError``
    names every file tried. The replacement is deterministic (unlike the official code, which
    draws a random other video). ``on_error="raise"`` re-raises the first error. Failed paths are
    appended to ``self.failures``; in DataLoader workers each worker has its own copy.

    Args:
        records: the videos and labels (from :func:`~videomae.data.lists.read_list`).
        num_frames: frames per clip ``T``.
        sampling_rate: stride between clip frames.
        transform: ``(frames, rng) -> clip``, e.g. ``PretrainTransform`` or ``EvalTransform``.
        train: random window (training) or centered window (validation).
        decode_threads: decord threads per video (``0``: FFmpeg chooses).
        on_error: ``"skip"`` or ``"raise"``.
        seed: mixed into every item's generator.
        max_tries: videos tried per item before giving up when skipping.

    Items are dicts: ``video`` float32 ``(C, T, H, W)``, ``label`` int64 scalar, ``index`` int64
    scalar (the index of the video actually returned, which differs from ``i`` after a skip).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        num_frames: int,
        sampling_rate: int,
        transform: ClipTransform,
        train: bool,
        decode_threads: int = 1,
        on_error: str = "skip",
        seed: int = 0,
        max_tries: int = 10,
    ) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if sampling_rate < 1:
            raise ValueError(f"sampling_rate must be >= 1, got {sampling_rate}")
        if decode_threads < 0:
            raise ValueError(f"decode_threads must be >= 0, got {decode_threads}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.records = list(records)
        self.num_frames = int(num_frames)
        self.sampling_rate = int(sampling_rate)
        self.transform = transform
        self.train = bool(train)
        self.decode_threads = int(decode_threads)
        self.on_error = on_error
        self.seed = int(seed)
        self.max_tries = int(max_tries)
        self.failures: list[str] = []

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int) -> np.random.Generator:
        """Generator of one item: fresh per call in training, fixed per index in validation."""
        if self.train:
            draw = int(torch.randint(0, 2**62, ()).item())
            return np.random.default_rng([self.seed, index, draw])
        return np.random.default_rng([self.seed, index])

    def _load(self, index: int) -> dict[str, torch.Tensor]:
        record = self.records[index]
        rng = self._rng(index)
        window_rng = rng if self.train else None

        def sampler(length: int) -> np.ndarray:
            return dense_indices(length, self.num_frames, self.sampling_rate, window_rng)

        frames = read_frames(record.path, sampler, num_threads=self.decode_threads)
        video = self.transform(frames, rng)
        return {
            "video": video,
            "label": torch.tensor(record.label, dtype=torch.int64),
            "index": torch.tensor(index, dtype=torch.int64),
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.records)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} videos")
        i %= n
        tried: list[str] = []
        limit = min(self.max_tries, n)
        for attempt in range(limit):
            index = (i + attempt) % n
            try:
                return self._load(index)
            except VideoDecodeError as err:
                self.failures.append(str(self.records[index].path))
                if self.on_error == "raise":
                    raise
                tried.append(f"{self.records[index].path} ({err.cause or err})")
                then = f"trying index {(index + 1) % n}" if attempt + 1 < limit else "giving up"
                warnings.warn(
                    f"skipping broken video {self.records[index].path} (index {index}, list line "
                    f"{self.records[index].line}): {err.cause or err}; {then}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        raise RuntimeError(
            f"{len(tried)} videos in a row failed to decode, starting at index {i} "
            f"(on_error='skip' tries up to {self.max_tries}): " + "; ".join(tried)
        )
