"""Video decoding with decord: open a file, decode only the frames a clip needs.

Every failure to read a video (missing file, empty file, not a video, a decoder error part way)
is raised as :class:`VideoDecodeError`, naming the file and the cause, so the dataset can decide
to skip the video or stop. Programming errors (a sampler returning indices out of range) are
raised as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import decord
import numpy as np
import torch

__all__ = ["VideoDecodeError", "read_frames", "video_length"]


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded.

    Attributes:
        path: the video file (``None`` when rebuilt from a message alone, see below).
        cause: what went wrong, in words (``None`` likewise).

    A DataLoader worker's exception reaches the main process rebuilt from its formatted message
    alone, ``VideoDecodeError(message)``; that form is accepted so the type survives (the message
    still names the file and the cause).
    """

    def __init__(self, path: str | Path, cause: str | None = None) -> None:
        if cause is None:
            self.path: str | None = None
            self.cause: str | None = None
            super().__init__(str(path))
            return
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot decode video {self.path}: {cause}")

    def __reduce__(self):  # keep (path, cause) when pickled
        if self.cause is None:
            return (type(self), (str(self),))
        return (type(self), (self.path, self.cause))


def _open(path: str | Path, num_threads: int) -> decord.VideoReader:
    """Open ``path`` with decord on the CPU; any failure becomes a :class:`VideoDecodeError`."""
    file = Path(path)
    if not file.is_file():
        raise VideoDecodeError(path, "file not found")
    if file.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        return decord.VideoReader(str(file), ctx=decord.cpu(0), num_threads=num_threads)
    except Exception as err:  # decord raises RuntimeError / DECORDError with ffmpeg's reason
        raise VideoDecodeError(path, f"decord cannot open it ({err})") from err


def _length(reader: decord.VideoReader, path: str | Path) -> int:
    """Frame count of an open reader, ``>= 1``."""
    try:
        length = len(reader)
    except Exception as err:
        raise VideoDecodeError(path, f"cannot read the frame count ({err})") from err
    if length < 1:
        raise VideoDecodeError(path, "the video has no frames")
    return length


def video_length(path: str | Path, num_threads: int = 1) -> int:
    """Number of frames of a video file (from the container index, without decoding frames).

    Raises:
        VideoDecodeError: the file cannot be opened or has no frames.
    """
    reader = _open(path, num_threads)
    try:
        return _length(reader, path)
    finally:
        del reader


def _to_tensor(batch: object) -> torch.Tensor:
    """decord batch (native NDArray, or a torch tensor under a torch bridge) -> torch tensor."""
    if isinstance(batch, torch.Tensor):
        return batch
    if hasattr(batch, "asnumpy"):
        return torch.from_numpy(batch.asnumpy())
    return torch.from_numpy(np.asarray(batch))


def read_frames(
    path: str | Path,
    sampler: Callable[[int], np.ndarray],
    num_threads: int = 1,
) -> torch.Tensor:
    """Decode the frames of a clip.

    Opens the video, asks ``sampler(num_video_frames)`` for the frame indices and decodes only
    those frames (decord seeks to the nearest key frame before the first one).

    Args:
        path: the video file.
        sampler: maps the number of frames in the video to the indices to decode, a 1-D integer
            array of length ``T`` with values in ``[0, num_video_frames - 1]`` (repeats allowed),
            e.g. ``lambda n: dense_indices(n, 16, 4, rng)``.
        num_threads: decoder threads (decord; ``0`` lets FFmpeg choose).

    Returns:
        uint8 tensor ``(T, H, W, C)``, RGB, ``C == 3``.

    Raises:
        VideoDecodeError: the file cannot be opened, has no frames or fails to decode.
        ValueError: the sampler returned indices that are empty or out of range.
    """
    reader = _open(path, num_threads)
    try:
        length = _length(reader, path)
        indices = np.asarray(sampler(length), dtype=np.int64)
        if indices.ndim != 1 or indices.size == 0:
            raise ValueError(
                f"sampler must return a non-empty 1-D index array, got {indices.shape}"
            )
        if indices.min() < 0 or indices.max() >= length:
            raise ValueError(
                f"sampler returned indices outside [0, {length - 1}] for {path}: {indices.tolist()}"
            )
        try:
            frames = _to_tensor(reader.get_batch(indices.tolist()))
        except Exception as err:
            raise VideoDecodeError(
                path, f"decoding frames {indices.tolist()} of {length} failed ({err})"
            ) from err
    finally:
        del reader
    if frames.ndim != 4 or frames.shape[0] != indices.size or frames.shape[-1] != 3:
        raise VideoDecodeError(
            path,
            f"decoder returned shape {tuple(frames.shape)}, expected ({indices.size}, H, W, 3)",
        )
    return frames
