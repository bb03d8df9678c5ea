"""videomae-transcode on small generated videos: copies that read back frame for frame, short
groups of pictures, the list for the copy, failures listed without stopping, resumable."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videomae.cli.transcode import main
from videomae.data.decoding import probe, read_frames


def make_video(path: Path, frames: int = 40, fps: int = 25, gop: int = 250) -> np.ndarray:
    """An H.264 file with one key frame every ``gop`` frames; returns its frames (RGB)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    video = np.stack(
        [
            np.stack(
                [128 + 100 * np.sin((x + 3 * t) / 5), 4 * y, 128 + 90 * np.cos(y / 7 + t / 4)], -1
            )
            for t in range(frames)
        ]
    ).astype(np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps), options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        for i, picture in enumerate(video):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return video


def picture_types(path: Path) -> list[int]:
    """Picture type of each frame, in presentation order (1 I, 2 P, 3 B)."""
    with av.open(str(path)) as container:
        return [int(f.pict_type) for f in container.decode(video=0)]


def key_frames(path: Path) -> list[int]:
    """Indices of the key frames of a file's video stream (in decode order)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    make_video(root / "a" / "one.mp4", frames=40)
    make_video(root / "two.mkv", frames=33, fps=12)
    (root / "broken.mp4").write_text("not a video")
    (root / "list.csv").write_text("a/one.mp4 0\nbroken.mp4 1\ntwo.mkv 2\n")
    return root


def test_h264_copy_reads_back_frame_for_frame_with_short_gops(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "fast"
    argv = [str(source / "list.csv"), "--root", str(source), "--out", str(out), "--jobs", "2"]
    assert main([*argv, "--keyint", "8"]) == 1  # one source is broken
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "3 videos: 2 copied" in captured.out
    assert (out / "list.csv").read_text() == "a/one.mp4 0\ntwo.mp4 2\n"
    assert "broken.mp4" in (out / "list.csv.failed.txt").read_text()
    assert not list(out.rglob("*partial*"))
    for src, copy in ((source / "a" / "one.mp4", out / "a" / "one.mp4"),
                      (source / "two.mkv", out / "two.mp4")):  # fmt: skip
        want, got = probe(src), probe(copy)
        assert (got.num_frames, got.fps) == (want.num_frames, want.fps)
        keys = key_frames(copy)  # at most --keyint frames apart (x264 may add one on a cut)
        gaps = np.diff([*keys, got.num_frames])
        assert keys[0] == 0 and gaps.max() <= 8
        assert len(key_frames(src)) == 1
        assert 3 in picture_types(copy)  # --bframes 3: B-frames between the references

        def every_frame(length: int) -> np.ndarray:
            return np.arange(length)

        a, b = read_frames(src, every_frame).float(), read_frames(copy, every_frame).float()
        assert a.shape == b.shape
        same = float((a - b).abs().mean())
        shifted = float((a[1:] - b[:-1]).abs().mean())  # what a frame off by one would give
        assert same < 6.0 and shifted > 3 * same, (same, shifted)
    # the same command again: nothing is redone
    stamp = (out / "a" / "one.mp4").stat().st_mtime_ns
    assert main(argv) == 1
    assert "0 copied, 2 already there, 1 failed" in capsys.readouterr().out
    assert (out / "a" / "one.mp4").stat().st_mtime_ns == stamp


def test_jpeg_frame_folders_and_short_side(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    (source / "list.csv").write_text("a/one.mp4 0\n")
    argv = [str(source / "list.csv"), "--root", str(source), "--out", str(out)]
    assert main([*argv, "--format", "frames", "--short-side", "32", "--jobs", "1"]) == 0
    folder = out / "a" / "one"
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "img_00001.jpg" and len(names) == 40
    assert (out / "list.csv").read_text() == "a/one 0\n"
    frames = read_frames(folder, lambda length: np.arange(length))
    assert frames.shape == (40, 32, 42, 3)  # 48x64 scaled to a 32 short side, sides even


def test_bad_options_are_usage_errors(source: Path, tmp_path: Path) -> None:
    argv = [str(source / "list.csv"), "--root", str(source), "--out", str(tmp_path / "o")]
    assert main([*argv, "--keyint", "0"]) == 2
    assert main([*argv, "--bframes", "17"]) == 2
    assert main([*argv, "--jobs", "0"]) == 2
    assert main([str(tmp_path / "nope.csv"), "--root", str(source), "--out", str(tmp_path)]) == 2
