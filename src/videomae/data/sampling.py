"""Frame index sampling: which frames of a video make one clip.

Kinetics-style *dense* sampling takes ``num_frames`` frames, one every ``sampling_rate`` frames,
from one window of the video. The window spans ``(num_frames - 1) * sampling_rate + 1`` frames
(first to last sampled frame, inclusive). In training the window starts at a uniformly random
frame; in validation it is centered, so a clip is the same every epoch.

Short videos (fewer frames than the window): the window starts at frame 0 with the same stride
and indices past the end are clamped to the last frame, so the clip repeats its last frame. The
temporal stride of the clip therefore never changes (the official VideoMAE loaders do the same:
they stop advancing at the end of the video). Example: 10 frames, 4 frames every 4 ->
``[0, 4, 8, 9]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dense_indices", "window_span"]


def window_span(num_frames: int, sampling_rate: int) -> int:
    """Number of video frames covered by a dense clip, from its first to its last frame."""
    return (num_frames - 1) * sampling_rate + 1


def dense_indices(
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Frame indices of one dense clip.

    Args:
        num_video_frames: frames in the video, ``>= 1``.
        num_frames: frames in the clip ``T``, ``>= 1``.
        sampling_rate: stride between clip frames, ``>= 1``.
        rng: draws the window start uniformly in ``[0, num_video_frames - span]`` when given;
            ``None`` takes the centered window (deterministic, for validation).

    Returns:
        int64 array of shape ``(T,)``, non-decreasing, all in ``[0, num_video_frames - 1]``.

    Raises:
        ValueError: a count is below 1.
    """
    if num_video_frames < 1:
        raise ValueError(f"num_video_frames must be >= 1, got {num_video_frames}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if sampling_rate < 1:
        raise ValueError(f"sampling_rate must be >= 1, got {sampling_rate}")

    span = window_span(num_frames, sampling_rate)
    slack = num_video_frames - span  # number of valid start positions minus one
    if slack <= 0:
        start = 0
    elif rng is None:
        start = slack // 2
    else:
        start = int(rng.integers(0, slack + 1))
    indices = start + np.arange(num_frames, dtype=np.int64) * sampling_rate
    return np.minimum(indices, num_video_frames - 1)
