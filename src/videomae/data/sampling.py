"""Frame index sampling: which frames of a video make one clip (or the views of a test clip).

Two schemes, as in the official VideoMAE / VideoMAE V2 loaders. ``n`` below is the number of
frames in the video.

**Dense** (Kinetics-style, :func:`dense_indices`, :func:`dense_views`): ``num_frames`` frames,
one every ``sampling_rate`` frames, from one window of the video. The window spans
``span = (num_frames - 1) * sampling_rate + 1`` frames (first to last sampled frame, inclusive).
In training the window starts at a uniformly random frame in ``[0, n - span]``; in validation it
is centered (start ``(n - span) // 2``), so a clip is the same every epoch. At test time
``num_views`` windows start evenly spaced from ``0`` to ``n - span``: view ``k`` starts at
``int(k * (n - span) / (num_views - 1))`` (the official test rule, in frames rather than in
units of ``sampling_rate``); one view is the centered window.

*Short videos* (``n < span``): every window starts at frame 0 with the same stride and indices
past the end are clamped to the last frame, so the clip repeats its last frame and the temporal
stride of the clip never changes (the official loaders do the same: they stop advancing at the
end of the video). Example: 10 frames, 4 frames every 4 -> ``[0, 4, 8, 9]``; every test view is
that same clip.

**Segments** (Something-Something-style, :func:`segment_indices`, :func:`segment_views`): the
video is cut into ``num_segments`` equal segments of ``seg = (n - 1) / num_segments`` frames and
one frame is taken from each (the official ``_get_seq_frames``). Segment ``i`` covers frames
``round(seg * i)`` to ``round(seg * (i + 1))`` (numpy's round, half to even). In training the
frame is uniform in that range (both ends included); at test time view ``k`` of ``num_views``
takes ``round(seg * i) + int(seg / (num_views + 1) * (k + 1))``; validation (``rng=None``) is
view 0 of 1, the middle of each segment. Every index is clamped to ``n - 1``.

*Short videos* (``n <= num_segments``): the same rule; segments are shorter than a frame, so
consecutive segments share frames and the clip repeats frames in order. Example: 3 frames,
4 segments -> ``seg = 0.5``, test ``[0, 0, 1, 2]`` (``round`` takes 0.5 to 0 and 1.5 to 2); a
one-frame video gives all zeros.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SAMPLING_CHOICES",
    "dense_indices",
    "dense_views",
    "segment_indices",
    "segment_views",
    "window_span",
]

SAMPLING_CHOICES = ("dense", "segment")
"""The values of ``sampling``: dense windows or one frame per segment (see above)."""


def _check_counts(**counts: int) -> None:
    """Raise ``ValueError`` naming the first count below 1."""
    for name, value in counts.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def window_span(num_frames: int, sampling_rate: int) -> int:
    """Number of video frames covered by a dense clip, from its first to its last frame."""
    return (num_frames - 1) * sampling_rate + 1


def _dense_clip(num_video_frames: int, start: int, num_frames: int, sampling_rate: int):
    """Indices of the dense clip starting at ``start``, clamped to the last frame."""
    indices = start + np.arange(num_frames, dtype=np.int64) * sampling_rate
    return np.minimum(indices, num_video_frames - 1)


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
    _check_counts(
        num_video_frames=num_video_frames, num_frames=num_frames, sampling_rate=sampling_rate
    )
    span = window_span(num_frames, sampling_rate)
    slack = num_video_frames - span  # number of valid start positions minus one
    if slack <= 0:
        start = 0
    elif rng is None:
        start = slack // 2
    else:
        start = int(rng.integers(0, slack + 1))
    return _dense_clip(num_video_frames, start, num_frames, sampling_rate)


def dense_views(
    num_video_frames: int, num_frames: int, sampling_rate: int, num_views: int
) -> np.ndarray:
    """Frame indices of the ``num_views`` temporal test views of a dense clip.

    View ``k`` starts at ``int(k * (num_video_frames - span) / (num_views - 1))``, so the first
    view starts at frame 0 and the last one ends at the last frame; a single view is the
    centered window of :func:`dense_indices` (``rng=None``). Short videos: see the module
    docstring (every view is the clamped clip from frame 0).

    Returns:
        int64 array ``(num_views, num_frames)``.

    Raises:
        ValueError: a count is below 1.
    """
    _check_counts(
        num_video_frames=num_video_frames,
        num_frames=num_frames,
        sampling_rate=sampling_rate,
        num_views=num_views,
    )
    if num_views == 1:
        return dense_indices(num_video_frames, num_frames, sampling_rate, None)[None]
    slack = max(num_video_frames - window_span(num_frames, sampling_rate), 0)
    step = slack / (num_views - 1)
    return np.stack(
        [
            _dense_clip(num_video_frames, int(k * step), num_frames, sampling_rate)
            for k in range(num_views)
        ]
    )


def _segment_bounds(num_video_frames: int, num_segments: int) -> tuple[float, np.ndarray]:
    """Segment size ``(n - 1) / num_segments`` and the first frame of every segment."""
    seg_size = max(0.0, (num_video_frames - 1) / num_segments)
    starts = np.round(seg_size * np.arange(num_segments)).astype(np.int64)
    return seg_size, starts


def segment_indices(
    num_video_frames: int, num_segments: int, rng: np.random.Generator | None
) -> np.ndarray:
    """Frame indices of one segment-sampled clip: one frame from each of ``num_segments``
    equal segments (Something-Something style).

    Args:
        num_video_frames: frames in the video, ``>= 1``.
        num_segments: frames in the clip ``T``, ``>= 1``.
        rng: a uniformly random frame of each segment when given (training); ``None`` takes
            the fixed test offset of view 0 of 1, the middle of each segment.

    Returns:
        int64 array ``(T,)``, non-decreasing, all in ``[0, num_video_frames - 1]``.

    Raises:
        ValueError: a count is below 1.
    """
    _check_counts(num_video_frames=num_video_frames, num_segments=num_segments)
    if rng is None:
        return segment_views(num_video_frames, num_segments, 1)[0]
    seg_size, starts = _segment_bounds(num_video_frames, num_segments)
    ends = np.round(seg_size * np.arange(1, num_segments + 1)).astype(np.int64)
    picks = rng.integers(starts, ends + 1)  # both ends included, like random.randint
    return np.minimum(picks.astype(np.int64), num_video_frames - 1)


def segment_views(num_video_frames: int, num_segments: int, num_views: int) -> np.ndarray:
    """Frame indices of the ``num_views`` test views of a segment-sampled clip.

    View ``k`` takes frame ``round(seg * i) + int(seg / (num_views + 1) * (k + 1))`` of segment
    ``i`` (clamped to the last frame), ``seg = (num_video_frames - 1) / num_segments``.

    Returns:
        int64 array ``(num_views, num_segments)``.

    Raises:
        ValueError: a count is below 1.
    """
    _check_counts(num_video_frames=num_video_frames, num_segments=num_segments, num_views=num_views)
    seg_size, starts = _segment_bounds(num_video_frames, num_segments)
    step = seg_size / (num_views + 1)
    offsets = np.array([int(step * (k + 1)) for k in range(num_views)], dtype=np.int64)
    return np.minimum(starts[None, :] + offsets[:, None], num_video_frames - 1)
