"""Shared test helpers: small real video files written with PyAV.

The clips encode their frame numbers: frame ``i`` is a grey picture of level
``frame_level(i) = 8 + 6 * i`` (for ``i < 40``) with a small white bar at the top that moves 2
pixels right per frame (so the encoder sees motion), and a test can tell which frames a decoder
returned with :func:`decoded_frame_ids` (the median level), robust to codec loss (levels are 6
apart; the codecs keep them within 1-2 levels).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
"""Real clips shared by the project (``/work/shared/videos``); tests skip when it is absent."""

CODEC_OF_SUFFIX = {".mp4": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}

LEVEL_OFFSET = 8
LEVEL_STEP = 6
CLIP_FRAMES = 40
CLIP_HEIGHT = 64
CLIP_WIDTH = 80


def frame_level(i: int) -> int:
    """Grey level of frame ``i`` in the test clips."""
    return LEVEL_OFFSET + LEVEL_STEP * i


def level_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` clip: frame ``i`` grey at ``frame_level(i)`` plus a moving bar."""
    if frame_level(num_frames - 1) > 255:
        raise ValueError(f"at most {(255 - LEVEL_OFFSET) // LEVEL_STEP + 1} frames can be encoded")
    levels = np.array([frame_level(i) for i in range(num_frames)], dtype=np.uint8)
    clip = np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()
    for i in range(num_frames):
        x = (2 * i) % width
        clip[i, : height // 8, x : x + 2] = 255
    return clip


def decoded_frame_ids(frames) -> list[int]:
    """Frame numbers of decoded test-clip frames ``(T, H, W, C)`` (torch or numpy), by level."""
    flat = np.asarray(frames, dtype=np.float64).reshape(len(frames), -1)
    return [round((m - LEVEL_OFFSET) / LEVEL_STEP) for m in np.median(flat, axis=1)]


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 25, codec: str | None = None
) -> Path:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` (H and W even) into a real video file.

    Args:
        path: output file; the suffix picks the container (``.mp4``, ``.webm``, ``.avi``).
        frames: the pictures.
        fps: frame rate.
        codec: ``libx264``, ``libvpx-vp9`` or ``mpeg4``; default from the suffix.
    """
    path = Path(path)
    codec = codec or CODEC_OF_SUFFIX[path.suffix]
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    _, height, width, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {
        "libx264": {"crf": "18", "preset": "veryfast", "threads": "1"},
        "libvpx-vp9": {"crf": "20", "b:v": "0", "cpu-used": "8", "threads": "1"},
        "mpeg4": {"qscale": "2"},
    }.get(codec, {})
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps), options=options)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        for picture in frames:
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


VIDEO_FOLDER_CLIPS: tuple[tuple[str, int], ...] = (
    ("videos/clip0.mp4", 0),
    ("videos/clip1.webm", 1),
    ("videos/clip2.avi", 2),
    ("videos/class a/clip 3.mp4", 0),  # spaces in the path
    ("videos/clip4.webm", 1),
    ("videos/clip5.mp4", 2),
)
"""The clips of :func:`video_folder` (relative path, label), in list order."""


@pytest.fixture(scope="session")
def video_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small data set: 6 real clips (64x80, 40 frames, frame ``i`` at grey level
    ``frame_level(i)``; H.264 .mp4, VP9 .webm, MPEG-4 .avi) and ``train.csv`` / ``val.csv``
    listing them (``relative/path label``). Session-scoped: tests must not modify it.
    """
    root = tmp_path_factory.mktemp("video_folder")
    frames = level_frames(CLIP_FRAMES, CLIP_HEIGHT, CLIP_WIDTH)
    for rel, _ in VIDEO_FOLDER_CLIPS:
        write_video(root / rel, frames, fps=25)
    lines = "".join(f"{rel} {label}\n" for rel, label in VIDEO_FOLDER_CLIPS)
    (root / "train.csv").write_text(lines)
    (root / "val.csv").write_text(lines)
    return root
