"""Tests of decoding: containers and codecs, frame folders, decode-time resize, the PyAV
fallback, broken files, probing, and the shared real clips."""

from __future__ import annotations

import multiprocessing
import re
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

from conftest import SHARED_VIDEOS, decoded_frame_ids, level_frames, write_video
from videomae.data import decoding
from videomae.data.decoding import (
    VideoDecodeError,
    VideoInfo,
    frame_folder_files,
    probe,
    read_frames,
    video_length,
)
from videomae.data.sampling import dense_indices, dense_views

FRAMES, HEIGHT, WIDTH = 40, 64, 80  # 40 frames: the levels conftest checks for every codec
CLIPS = {  # file name -> codec
    "h264.mp4": "libx264",
    "vp9.webm": "libvpx-vp9",
    "mpeg4.avi": "mpeg4",
    "h264.mkv": "libx264",
}


def write_audio_only(path: Path) -> Path:
    """An .mp4 holding one AAC audio stream and no video."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_frame_folder(folder: Path, num: int, first: int | None = 1, suffix: str = ".jpg"):
    """Images of the level clip: ``img_{first + i:05d}`` (or unnumbered names ``a``, ``b`` ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, picture in enumerate(level_frames(num, HEIGHT, WIDTH)):
        chw = torch.from_numpy(picture).permute(2, 0, 1).contiguous()
        data = encode_png(chw) if suffix == ".png" else encode_jpeg(chw, quality=95)
        name = f"img_{first + i:05d}" if first is not None else chr(ord("a") + i)
        (folder / f"{name}{suffix}").write_bytes(data.numpy().tobytes())
    return folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four container/codec clips (64x80, 30 frames, frame i at level 8 + 6 i)."""
    root = tmp_path_factory.mktemp("decoding")
    frames = level_frames(FRAMES, HEIGHT, WIDTH)
    return {name: write_video(root / name, frames, codec=codec) for name, codec in CLIPS.items()}


def _take(indices):
    return lambda n: np.asarray(indices)


# ---------------------------------------------------------------------------- containers


@pytest.mark.parametrize("name", list(CLIPS))
@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_each_container_and_backend_decodes_repeated_unsorted_indices(
    clips: dict[str, Path], name: str, backend: str
) -> None:
    wanted = [39, 0, 17, 17, 3, 0, 12]
    frames = read_frames(clips[name], _take(wanted), backend=backend)
    assert frames.dtype == torch.uint8 and frames.shape == (7, HEIGHT, WIDTH, 3)
    assert decoded_frame_ids(frames) == wanted
    assert video_length(clips[name], backend=backend) == FRAMES


def _decode_in_child(path: Path, queue) -> None:
    queue.put(decoded_frame_ids(read_frames(path, _take([5, 20]), backend="pyav")))


def test_pyav_decodes_in_a_worker_forked_after_the_parent_decoded(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loader workers are forked from a process that may have decoded (the reconstruction
    pictures, a validation pass without workers). Frames are converted with one scaling thread:
    with PyAV 19's default pool the forked child waited forever for the parent's threads."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs fork")
    threads = []
    original = av.VideoFrame.to_ndarray

    def recording(self, *args, **kwargs):
        threads.append(kwargs.get("threads"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "to_ndarray", recording)
    path = clips["h264.mp4"]
    assert decoded_frame_ids(read_frames(path, _take([5, 20]), backend="pyav")) == [5, 20]
    assert threads and set(threads) == {1}
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(path, queue))
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "the forked child hung converting a frame"
    assert queue.get(timeout=10) == [5, 20]


def test_backends_return_identical_pixels(clips: dict[str, Path]) -> None:
    for path in clips.values():
        a = read_frames(path, _take([5, 28, 1]), backend="decord")
        b = read_frames(path, _take([5, 28, 1]), backend="pyav")
        assert torch.equal(a, b), path.name


def test_several_views_concatenated(clips: dict[str, Path]) -> None:
    views = dense_views(FRAMES, 4, 3, 3)  # span 10, slack 30: starts 0, 15, 30
    frames = read_frames(clips["vp9.webm"], lambda n: dense_views(n, 4, 3, 3).reshape(-1))
    assert frames.shape[0] == 12
    assert decoded_frame_ids(frames) == views.reshape(-1).tolist()


def test_video_range_start_total(clips: dict[str, Path]) -> None:
    path = clips["h264.mp4"]
    seen = []

    def sampler(n: int) -> np.ndarray:
        seen.append(n)
        return np.array([0, n - 1])

    assert decoded_frame_ids(read_frames(path, sampler, start=10, total=8)) == [10, 17]
    assert decoded_frame_ids(read_frames(path, sampler, start=35)) == [35, 39]
    assert seen == [8, 5]
    assert video_length(path, start=10, total=8) == 8
    with pytest.raises(VideoDecodeError, match="asks for 8 frames from frame 35, only 5"):
        read_frames(path, sampler, start=35, total=8)


# ------------------------------------------------------------------------------- resize


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_decode_time_resize_keeps_aspect_and_frames(clips: dict[str, Path], backend) -> None:
    frames = read_frames(clips["h264.mp4"], _take([3, 9, 3]), short_side=32, backend=backend)
    assert frames.shape == (3, 32, 40, 3)
    assert decoded_frame_ids(frames) == [3, 9, 3]
    assert read_frames(clips["vp9.webm"], _take([0]), short_side=64).shape == (1, 64, 80, 3)
    up = read_frames(clips["mpeg4.avi"], _take([1]), short_side=96, backend=backend)
    assert up.shape == (1, 96, 120, 3)


def test_resize_at_decode_matches_full_decode_then_resize(clips: dict[str, Path]) -> None:
    path = clips["h264.mp4"]
    small = read_frames(path, _take([4, 20]), short_side=32).float()
    full = read_frames(path, _take([4, 20])).permute(0, 3, 1, 2).float()
    ref = torch.nn.functional.interpolate(full, size=(32, 40), mode="area").permute(0, 2, 3, 1)
    assert (small - ref).abs().mean() < 3.0  # the same pictures, up to the filter


# --------------------------------------------------------------------------- frame folders


def test_frame_folder_one_based_names_start_total(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "clip", 20, first=1)
    assert frame_folder_files(folder)[:2] == ["img_00001.jpg", "img_00002.jpg"]
    # V2 list "clip 1 20": frame number 1 is img_00001.jpg, position 0
    out = read_frames(folder, lambda n: np.arange(n), start=1, total=20)
    assert out.shape == (20, HEIGHT, WIDTH, 3) and decoded_frame_ids(out) == list(range(20))
    # "clip 5 10": img_00005 ... img_00014, positions 4..13
    seen = []
    out = read_frames(folder, lambda n: seen.append(n) or np.array([0, 9, 9, 2]), start=5, total=10)
    assert seen == [10] and decoded_frame_ids(out) == [4, 13, 13, 6]
    # start 0 (a folder-tree record) in a folder numbered from 1: from the first image
    assert decoded_frame_ids(read_frames(folder, _take([0, 19]))) == [0, 19]
    assert video_length(folder) == 20 and video_length(folder, start=5, total=10) == 10
    with pytest.raises(VideoDecodeError, match="asks for 10 frames from frame 15, only 6"):
        read_frames(folder, _take([0]), start=15, total=10)


def test_frame_folder_zero_based_unnumbered_and_png(tmp_path: Path) -> None:
    zero = write_frame_folder(tmp_path / "zero", 12, first=0, suffix=".png")
    assert decoded_frame_ids(read_frames(zero, _take([0, 1]), start=3)) == [3, 4]
    plain = write_frame_folder(tmp_path / "plain", 6, first=None)  # a.jpg ... f.jpg
    out = read_frames(plain, lambda n: np.arange(n), start=2)
    assert decoded_frame_ids(out) == [2, 3, 4, 5]  # no numbers: start is a position


def test_frame_folder_natural_order_and_resize(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "f", 12, first=1)
    for path in folder.iterdir():  # unpadded names: img_2 must come before img_10
        path.rename(folder / path.name.replace("img_0000", "img_").replace("img_000", "img_"))
    assert frame_folder_files(folder)[:3] == ["img_1.jpg", "img_2.jpg", "img_3.jpg"]
    out = read_frames(folder, _take([11, 1]), short_side=32)
    assert out.shape == (2, 32, 40, 3) and decoded_frame_ids(out) == [11, 1]


def test_frame_folder_decodes_only_the_needed_images(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "f", 10, first=1)
    (folder / "img_00007.jpg").write_bytes(b"not a jpeg")  # position 6
    assert decoded_frame_ids(read_frames(folder, _take([0, 5, 9]))) == [0, 5, 9]
    with pytest.raises(VideoDecodeError, match=r"image img_00007\.jpg cannot be decoded"):
        read_frames(folder, _take([6]))


def test_frame_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(VideoDecodeError, match=r"frame folder has no \.jpg/\.jpeg/\.png images"):
        read_frames(tmp_path / "empty", _take([0]))


# ------------------------------------------------------------------------------- fallback


def test_decord_fallback_when_pyav_cannot_open(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = clips["h264.mkv"]
    wanted = [22, 2, 2, 15]
    expected = read_frames(path, _take(wanted), backend="pyav")

    def broken(*args, **kwargs):
        raise av.error.InvalidDataError(1094995529, "simulated PyAV failure")

    monkeypatch.setattr(decoding.av, "open", broken)
    monkeypatch.setattr(decoding, "_warned_fallback", set())
    with pytest.warns(RuntimeWarning, match=re.escape(str(path)) + ".*simulated PyAV failure"):
        frames = read_frames(path, _take(wanted))
    assert torch.equal(frames, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning comes once per file
        assert torch.equal(read_frames(path, _take(wanted)), expected)
    assert video_length(path) == FRAMES
    with pytest.raises(VideoDecodeError, match="simulated PyAV failure"):
        read_frames(path, _take(wanted), backend="pyav")


def test_decord_fallback_decodes_the_clip_pyav_was_asked_for(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyAV fails part way: decord decodes the frames the sampler chose for PyAV, without asking
    the sampler again (a random sampler would pick another clip)."""
    path = clips["h264.mp4"]
    monkeypatch.setattr(decoding, "_warned_fallback", set())

    def failing(container, stream, decoder, keep=None):
        raise av.error.InvalidDataError(1094995529, "simulated decoding error")
        yield

    monkeypatch.setattr(decoding, "_decoded", failing)
    picks = iter([[7, 3, 30], [1, 2, 4]])
    with pytest.warns(RuntimeWarning, match="decoding it with decord instead"):
        frames = read_frames(path, lambda n: np.array(next(picks)))
    assert decoded_frame_ids(frames) == [7, 3, 30]


def test_auto_reads_with_pyav_what_decord_cannot(tmp_path: Path) -> None:
    # decord 0.6 opens a 48-pixel-wide video but fails to decode it (engineering notes)
    path = write_video(tmp_path / "w48.mp4", level_frames(10, 32, 48))
    with pytest.raises(VideoDecodeError, match="decoding fails"):
        read_frames(path, _take([0]), backend="decord")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyAV reads it: no fallback
        frames = read_frames(path, _take([9, 0, 4]))
    assert frames.shape == (3, 32, 48, 3) and decoded_frame_ids(frames) == [9, 0, 4]
    assert probe(path).backend == "pyav"


def test_pyav_seeks_instead_of_decoding_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 frames with a key frame every 10: frames 31..33 need only the last GOP (30..33)
    path = tmp_path / "gop.mp4"
    frames = level_frames(40, HEIGHT, WIDTH)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(25), options={"g": "10", "keyint_min": "10", "bf": "0"}
        )
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for picture in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    converted = []
    original = av.VideoFrame.to_ndarray

    def counting(self, *args, **kwargs):
        converted.append(self.pts)
        return original(self, *args, **kwargs)

    decoded = []
    original_decode = decoding._decoded

    def counting_decode(*args, **kwargs):
        for frame in original_decode(*args, **kwargs):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(av.VideoFrame, "to_ndarray", counting)
    monkeypatch.setattr(decoding, "_decoded", counting_decode)
    out = read_frames(path, _take([33, 31]), backend="pyav")
    assert decoded_frame_ids(out) == [33, 31]
    assert len(converted) == 2  # only the needed frames are converted
    assert 4 <= len(decoded) <= 10  # from the key frame at 30 to frame 33, not 34 frames


def test_pyav_skips_frames_no_other_frame_refers_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H.264 with B-frames that are not references (key frame every 20): a sparse clip decodes
    the reference frames and the wanted ones only, and gives the frames a full decode gives."""
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264",
            rate=Fraction(25),
            options={"g": "20", "bf": "3", "x264-params": "b-pyramid=none:b-adapt=0:scenecut=0"},
        )
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for picture in level_frames(40, HEIGHT, WIDTH):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))
    decoded: list[int] = []
    original_decode = decoding._decoded

    def counting_decode(*args, **kwargs):
        for frame in original_decode(*args, **kwargs):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(decoding, "_decoded", counting_decode)
    wanted = [38, 22, 30, 22]
    skipping = read_frames(path, _take(wanted), backend="pyav")
    skipped_run, decoded[:] = list(decoded), []
    monkeypatch.setattr(decoding, "_SKIPS_NONREF", frozenset())  # every frame decoded
    full = read_frames(path, _take(wanted), backend="pyav")
    assert decoded_frame_ids(skipping) == wanted
    assert torch.equal(skipping, full)
    assert torch.equal(skipping, read_frames(path, _take(wanted), backend="decord"))
    assert len(decoded) == 19  # frames 20..38: from the key frame to the last wanted one
    assert len(skipped_run) <= 9  # I and P frames (20, 24, ..., 36) and the wanted 22, 30, 38


def _bframe_stream(path: Path, frames: np.ndarray, container_format: str, fps: int = 25) -> None:
    """H.264 with three non-reference B-frames between references, in ``container_format``."""
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(
            "libx264",
            rate=Fraction(fps),
            options={"g": "20", "bf": "3", "x264-params": "b-pyramid=none:b-adapt=0:scenecut=0"},
        )
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for picture in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))


def test_decode_order_timestamps_are_not_trusted_for_skipping(tmp_path: Path) -> None:
    """A file whose packets carry decode times as presentation times (pts = dts) shows no
    reordering in its index: nothing is skipped and the frames are counted as before."""
    source = tmp_path / "bframes.mp4"
    _bframe_stream(source, level_frames(40, HEIGHT, WIDTH), "mp4")
    path = tmp_path / "dts_as_pts.mkv"
    with av.open(str(source)) as src, av.open(str(path), mode="w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is None:
                continue
            packet.pts = packet.dts
            packet.stream = out
            dst.mux(packet)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert not decoding._packet_index(container, stream, path).reordered
    for wanted in ([5], [1], [8, 16, 24], [30, 2, 13], [9, 10, 11]):
        try:  # PyAV counts frames here; where it cannot, it says so (auto then asks decord)
            frames = read_frames(path, _take(wanted), backend="pyav")
        except VideoDecodeError:
            frames = None
        if frames is not None:
            assert decoded_frame_ids(frames) == wanted  # never other frames
        assert decoded_frame_ids(read_frames(path, _take(wanted))) == wanted


def test_frame_size_change_is_a_decode_error_and_auto_asks_decord(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames of two sizes in one clip (a stream whose size changes part way) are a decode
    error naming the sizes, not numpy's stacking error: the video is skipped as broken, and
    ``auto`` asks decord."""
    real = decoding._pyav_frames

    def resized(*args, **kwargs):
        frames = real(*args, **kwargs)
        return [frames[0], frames[1][::2, ::2]]

    monkeypatch.setattr(decoding, "_pyav_frames", resized)
    path = clips["h264.mp4"]
    with pytest.raises(VideoDecodeError, match=r"frame size changes within the clip: \[\(32"):
        read_frames(path, _take([2, 15]), backend="pyav")
    monkeypatch.setattr(decoding, "_warned_fallback", set())
    with pytest.warns(RuntimeWarning, match="frame size changes.*decoding it with decord"):
        frames = read_frames(path, _take([2, 15]))
    assert decoded_frame_ids(frames) == [2, 15]


def test_auto_does_not_ask_decord_for_a_range_past_the_end(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("decord was asked")

    monkeypatch.setattr(decoding, "_read_decord", refuse)
    with pytest.raises(VideoDecodeError, match="asks for 8 frames from frame 35, only 5"):
        read_frames(clips["h264.mp4"], _take([0]), start=35, total=8)


# --------------------------------------------------------------------------------- broken


def _broken(folder: Path, clips: dict[str, Path]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n" * 20)
    mp4 = clips["h264.mp4"].read_bytes()
    (folder / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    mkv = clips["h264.mkv"].read_bytes()
    (folder / "noframes.mkv").write_bytes(mkv[: len(mkv) // 2])  # header, no whole cluster
    return {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "text": folder / "text.mp4",
        "truncated": folder / "truncated.mp4",
        "audio": write_audio_only(folder / "audio.mp4"),
        "noframes": folder / "noframes.mkv",
    }


CAUSES = {
    "missing": "file not found",
    "empty": r"file is empty \(0 bytes\)",
    "text": "not a video file \\(it holds text: 'this is not a video'\\)",
    "truncated": r"truncated or corrupt MP4/QuickTime file",
    "audio": r"no video stream \(the file holds: audio/aac\)",
    "noframes": "truncated or corrupt: the header announces 40 frames, none can be read",
}


@pytest.mark.parametrize("kind", list(CAUSES))
@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_broken_files_raise_with_their_cause(
    tmp_path: Path, clips: dict[str, Path], kind: str, backend: str
) -> None:
    path = _broken(tmp_path, clips)[kind]
    with pytest.raises(VideoDecodeError) as info:
        read_frames(path, _take([0]), backend=backend)
    err = info.value
    assert err.path == str(path) and re.match(CAUSES[kind], err.cause), err.cause
    if backend == "auto" and kind not in ("missing", "empty"):
        assert "[decord: cannot open it" in err.cause  # both causes named
    with pytest.raises(VideoDecodeError, match=CAUSES[kind]):
        probe(path)
    with pytest.raises(VideoDecodeError, match=CAUSES[kind]):
        video_length(path)


def test_truncated_webm_is_readable_but_probe_sees_the_header(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    data = clips["vp9.webm"].read_bytes()
    path = tmp_path / "cut.webm"
    path.write_bytes(data[: len(data) // 2])
    info = probe(path)
    assert info.declared_frames == FRAMES and 0 < info.num_frames < FRAMES
    last = read_frames(path, lambda n: np.array([n - 1]))
    assert decoded_frame_ids(last) == [info.num_frames - 1]


def test_bad_arguments(clips: dict[str, Path]) -> None:
    path = clips["h264.mp4"]
    with pytest.raises(ValueError, match=r"backend 'ffmpeg'.*'auto', 'decord', 'pyav'"):
        read_frames(path, _take([0]), backend="ffmpeg")
    with pytest.raises(ValueError, match="short_side"):
        read_frames(path, _take([0]), short_side=0)
    with pytest.raises(ValueError, match="outside"):
        read_frames(path, lambda n: np.array([n]), backend="pyav")


# ---------------------------------------------------------------------------------- probe


def test_probe_fixture_clips(clips: dict[str, Path]) -> None:
    codecs = {"h264.mp4": "h264", "vp9.webm": "vp9", "mpeg4.avi": "mpeg4", "h264.mkv": "h264"}
    for name, path in clips.items():
        info = probe(path)
        assert info == VideoInfo(
            path=str(path),
            num_frames=FRAMES,
            fps=25.0,
            width=WIDTH,
            height=HEIGHT,
            duration_s=pytest.approx(1.6),
            codec=codecs[name],
            backend="pyav",
            declared_frames=FRAMES,
        )


def test_probe_frame_folder(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "f", 12, first=1)
    info = probe(folder)
    assert (info.num_frames, info.fps, info.width, info.height) == (12, None, WIDTH, HEIGHT)
    assert (info.codec, info.backend, info.duration_s) == ("jpeg", "frames", None)
    assert probe(folder, start=3, total=5).num_frames == 5


# ------------------------------------------------------------------------- shared videos

SHARED = [  # file, frames, fps, width, height, codec (README table)
    ("k400_style_340x256_h264.mp4", 300, 30.0, 340, 256, "h264"),
    ("ucf_style_320x240_mpeg4.avi", 164, 25.0, 320, 240, "mpeg4"),
    ("short_32frames_h264.mp4", 32, 30.0, 340, 256, "h264"),
    ("ssv2_style_426x240_vp9.webm", 50, 12.0, 426, 240, "vp9"),
]


@pytest.mark.parametrize(("name", "frames", "fps", "width", "height", "codec"), SHARED)
def test_shared_videos_probe_and_decode_with_both_backends(
    name: str, frames: int, fps: float, width: int, height: int, codec: str
) -> None:
    path = SHARED_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"shared test videos not found at {SHARED_VIDEOS}")
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (frames, fps, width, height)
    assert info.codec == codec and info.duration_s == pytest.approx(frames / fps)
    wanted = np.concatenate([dense_indices(frames, 8, 4, None), [0]])
    a = read_frames(path, _take(wanted), backend="decord")
    b = read_frames(path, _take(wanted), backend="pyav")
    assert a.shape == (9, height, width, 3) and a.float().std() > 1.0
    assert torch.equal(a, b)  # the same frames, pixel for pixel
    # the last frame: PyAV's equals a plain decode of the whole file (decord 0.6 sometimes
    # returns an earlier frame for the last frame of this AVI: measured 1 run in 8)
    with av.open(str(path)) as container:
        *_, last = container.decode(video=0)
    last = torch.from_numpy(last.to_ndarray(format="rgb24"))
    assert torch.equal(read_frames(path, _take([frames - 1]), backend="pyav")[0], last)
    # backend auto returns the right frame on every file (for AVIs it takes PyAV)
    assert torch.equal(read_frames(path, _take([frames - 1]))[0], last)
    small = read_frames(path, _take(wanted[:2]), short_side=112)
    assert small.shape[1] == 112 and abs(small.shape[2] / 112 - width / height) < 0.02


def test_auto_reads_avi_files_with_pyav(monkeypatch: pytest.MonkeyPatch) -> None:
    """decord 0.6 returns a wrong frame now and then from AVIs with packed B-frames (UCF101 and
    HMDB51 ship as such): backend auto never hands an AVI to it."""
    path = SHARED_VIDEOS / "ucf_style_320x240_mpeg4.avi"
    if not path.is_file():
        pytest.skip(f"shared test videos not found at {SHARED_VIDEOS}")
    from videomae.data import decoding

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decord was asked for an AVI")

    monkeypatch.setattr(decoding, "_read_decord", refuse)
    frames = read_frames(path, _take([0, 163]))
    assert frames.shape == (2, 240, 320, 3)
    real = decoding._read_pyav

    def failing(file, *args, **kwargs):
        real(file, *args, **kwargs)
        raise VideoDecodeError(file, "simulated PyAV failure")

    monkeypatch.setattr(decoding, "_read_pyav", failing)
    with pytest.raises(VideoDecodeError, match="simulated PyAV failure"):
        read_frames(path, _take([0]))  # not handed to decord even then
    with pytest.raises(AssertionError, match="decord was asked"):
        read_frames(SHARED_VIDEOS / "k400_style_340x256_h264.mp4", _take([0]))


# ---------------------------------------------------------------------------- NVDEC
def _nvdec_starts() -> bool:
    """Whether FFmpeg's h264_cuvid decoder opens here (an NVIDIA GPU and driver)."""
    try:
        av.CodecContext.create("h264_cuvid", "r").open()
    except Exception:
        return False
    return True


def _fresh_nvdec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which NVDEC decoders opened in this process (and how), for one test."""
    monkeypatch.setattr(decoding, "_nvdec_way", {})
    monkeypatch.setattr(decoding, "_nvdec_held", [])


def test_nvdec_without_a_gpu_decodes_as_auto_with_one_warning(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    if _nvdec_starts():
        pytest.skip("this machine has NVDEC: the fallback is not taken")
    _fresh_nvdec(monkeypatch)
    wanted = _take([39, 0, 17, 17, 3])
    with pytest.warns(RuntimeWarning, match=r"data\.backend=nvdec: no NVDEC for h264") as caught:
        first = read_frames(clips["h264.mp4"], wanted, backend="nvdec")
        again = read_frames(clips["h264.mkv"], wanted, backend="nvdec")
    assert len([w for w in caught if "nvdec" in str(w.message)]) == 1  # once per codec
    assert torch.equal(first, read_frames(clips["h264.mp4"], wanted, backend="auto"))
    assert torch.equal(again, read_frames(clips["h264.mkv"], wanted, backend="auto"))


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "h264.mkv"])
def test_nvdec_route_decodes_like_pyav(
    clips: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NVDEC path (a codec context fed the demuxed packets, its own seek and flush) run
    with FFmpeg's software decoder of the same codec: the frames PyAV's own path gives."""
    _fresh_nvdec(monkeypatch)
    monkeypatch.setattr(decoding, "_nvdec_name", lambda context: context.name)
    views = dense_views(FRAMES, 4, 3, 3).reshape(-1)[::-1].copy()  # out of order, repeats
    for pick, side in ((_take([39, 0, 17, 17, 3]), None), (lambda n: views, 32)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback taken
            got = read_frames(clips[name], pick, backend="nvdec", short_side=side)
        assert torch.equal(got, read_frames(clips[name], pick, backend="pyav", short_side=side))
    assert list(decoding._nvdec_way.values()) in (["shared"], ["own"])  # opened, one codec


def test_nvdec_broken_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fresh_nvdec(monkeypatch)
    path = tmp_path / "text.mp4"
    path.write_text("not a video")
    with pytest.raises(VideoDecodeError) as info:
        read_frames(path, _take([0]), backend="nvdec")
    assert info.value.path == str(path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "h264.mkv"])
def test_nvdec_on_the_gpu_matches_the_cpu(
    clips: dict[str, Path], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a machine with NVDEC the GPU decodes the clips: the same frames (levels) as the CPU,
    pixel values within the rounding of another YUV -> RGB path, and no fallback."""
    if not _nvdec_starts():
        pytest.skip("CUDA but no NVDEC decoder in PyAV's FFmpeg")
    _fresh_nvdec(monkeypatch)
    wanted = _take([39, 0, 17, 17, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gpu = read_frames(clips[name], wanted, backend="nvdec")
    cpu = read_frames(clips[name], wanted, backend="pyav")
    assert decoded_frame_ids(gpu) == [39, 0, 17, 17, 3]
    assert (gpu.int() - cpu.int()).abs().max() <= 3
    assert list(decoding._nvdec_way.values()) in (["shared"], ["own"])  # opened, one codec


def test_nvdec_leaves_avi_and_odd_sizes_to_the_cpu(
    clips: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_nvdec(monkeypatch)
    monkeypatch.setattr(decoding, "_nvdec_name", lambda context: context.name)
    odd = write_video(tmp_path / "odd.webm", level_frames(12, 64, 81), codec="libvpx-vp9")
    for path in (clips["mpeg4.avi"], odd):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = read_frames(path, _take([0, 5]), backend="nvdec")
        assert torch.equal(got, read_frames(path, _take([0, 5]), backend="auto"))
    assert decoding._nvdec_way == {}  # no NVDEC decoder was opened


def test_nvdec_failure_on_a_file_decodes_it_on_the_cpu(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file NVDEC opens but fails on (e.g. a bit depth it lacks) is decoded again on the CPU,
    with one warning naming it, and NVDEC stays on for the codec's other files."""
    _fresh_nvdec(monkeypatch)
    monkeypatch.setattr(decoding, "_nvdec_name", lambda context: context.name)
    monkeypatch.setattr(decoding, "_warned_fallback", set())
    real = decoding._decoded

    def failing(container, stream, decoder, keep=None):
        if decoder is not None:
            raise av.error.InvalidDataError(1094995529, "cuvid decode callback error")
        yield from real(container, stream, decoder, keep)

    monkeypatch.setattr(decoding, "_decoded", failing)
    path = clips["h264.mp4"]
    with pytest.warns(RuntimeWarning, match=rf"{re.escape(str(path))} did not decode on NVDEC"):
        got = read_frames(path, _take([3, 1]), backend="nvdec")
    assert torch.equal(got, read_frames(path, _take([3, 1]), backend="auto"))
    assert decoding._nvdec_way.get("h264") in ("shared", "own")  # still on for the codec


def test_nvdec_opens_on_the_shared_cuda_context_first(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker opens its decoders on the GPU's primary CUDA context (LOCAL_RANK's GPU), not
    one context per file; where that does not start, a context of its own, and the way that
    failed is not tried again for the codec."""
    _fresh_nvdec(monkeypatch)
    monkeypatch.setattr(decoding, "_nvdec_name", lambda context: context.name)
    monkeypatch.setenv("LOCAL_RANK", "1")
    asked: list[tuple] = []

    def no_device(*args, **kwargs):  # as on a machine without CUDA
        asked.append((args, kwargs))
        raise av.error.ExternalError(-542398533, "av_hwdevice_ctx_create")

    monkeypatch.setattr(decoding, "HWAccel", no_device)
    wanted = _take([9, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("h264.mp4", "h264.mkv"):
            got = read_frames(clips[name], wanted, backend="nvdec")
            assert torch.equal(got, read_frames(clips[name], wanted, backend="pyav"))
    held = decoding._nvdec_held
    assert len(held) == 1 and held[0].is_open  # the last decoder, kept until the next opens
    assert len(asked) == 1  # once per codec and process
    assert asked[0][0] == ("cuda",)
    assert asked[0][1]["device"] == "1" and asked[0][1]["options"] == {"primary_ctx": "1"}
    assert decoding._nvdec_way == {"h264": "own"}


def test_nvdec_file_it_does_not_open_is_decoded_on_the_cpu(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once NVDEC has opened for a codec, a file it refuses to open (e.g. a 10-bit H.264 the
    GPU lacks) is decoded on the CPU with a warning naming it; the codec stays on NVDEC."""
    monkeypatch.setattr(decoding, "_nvdec_way", {"h264": "shared"})
    monkeypatch.setattr(decoding, "_nvdec_name", lambda context: context.name)
    monkeypatch.setattr(decoding, "_warned_fallback", set())

    def refuses(name, source, shared):
        raise av.error.ValueError(22, "cuvid: bit depth not supported")

    monkeypatch.setattr(decoding, "_open_nvdec", refuses)
    path = clips["h264.mp4"]
    with pytest.warns(RuntimeWarning, match=r"h264\.mp4 did not decode on NVDEC \(NVDEC does not"):
        got = read_frames(path, _take([3, 1]), backend="nvdec")
    assert torch.equal(got, read_frames(path, _take([3, 1]), backend="auto"))
    assert decoding._nvdec_way == {"h264": "shared"}


def test_nvdec_decoders_are_found_by_codec_id() -> None:
    """An AV1 stream's decoder is libdav1d, MPEG-2's mpeg2video: the NVDEC one comes by id."""
    names = decoding._cuvid_decoders()
    assert names.get(av.Codec("h264", "r").id) == "h264_cuvid"
    for codec, cuvid in (("libdav1d", "av1_cuvid"), ("mpeg2video", "mpeg2_cuvid")):
        if cuvid in av.codecs_available and codec in av.codecs_available:
            assert names[av.Codec(codec, "r").id] == cuvid
