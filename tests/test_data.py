"""Tests of the data pipeline: lists, sampling, decoding, transforms, dataset, DataModule."""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import (
    CLIP_FRAMES,
    CLIP_HEIGHT,
    CLIP_WIDTH,
    SHARED_VIDEOS,
    VIDEO_FOLDER_CLIPS,
    decoded_frame_ids,
    level_frames,
    write_video,
)
from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.data.datamodule import VideoDataModule
from videomae.data.datasets import VideoClipDataset
from videomae.data.decoding import VideoDecodeError, read_frames, video_length
from videomae.data.device import normalize_video
from videomae.data.lists import VideoRecord, read_list
from videomae.data.sampling import dense_indices
from videomae.data.transforms import (
    EvalTransform,
    MultiScaleCrop,
    PretrainTransform,
    center_crop_resize,
)
from videomae.errors import ConfigError

# ---------------------------------------------------------------------------------------- lists


def test_read_list_parses_relative_absolute_spaces_and_commas(tmp_path: Path) -> None:
    root = tmp_path / "root"
    absolute = tmp_path / "elsewhere" / "x.mp4"
    lines = [
        "a/b.mp4 3",
        "",
        f"{absolute} 0",
        "class name/with space.webm\t12",
        "c.avi,4",
        "d.mp4 , 5",
        "   ",
    ]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    records = read_list(tmp_path / "train.csv", root)
    assert records == [
        VideoRecord(root / "a" / "b.mp4", 3, 1),
        VideoRecord(absolute, 0, 3),
        VideoRecord(root / "class name" / "with space.webm", 12, 4),
        VideoRecord(root / "c.avi", 4, 5),
        VideoRecord(root / "d.mp4", 5, 6),
    ]
    assert all(r.path.is_absolute() for r in records)


def test_read_list_relative_root_becomes_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "l.csv").write_text("v.mp4 1\n")
    (record,) = read_list("l.csv", "data")
    assert record.path == tmp_path / "data" / "v.mp4"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("only_a_path.mp4", "no label"),
        ("a.mp4 seven", "not an integer"),
        ("a.mp4 1.5", "not an integer"),
        ("a.mp4 -1", "negative"),
    ],
)
def test_read_list_malformed_line_names_file_and_line(tmp_path: Path, line, reason) -> None:
    list_file = tmp_path / "bad.csv"
    list_file.write_text(f"good.mp4 0\n{line}\n")
    with pytest.raises(ValueError, match=reason) as info:
        read_list(list_file, tmp_path)
    message = str(info.value)
    assert f"{list_file}:2" in message
    assert line in message


def test_read_list_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_list(tmp_path / "nope.csv", tmp_path)


# ------------------------------------------------------------------------------------- sampling


def test_dense_indices_centered_when_no_rng() -> None:
    # 100 frames, 4 every 4: span 13, starts 0..87, center 43
    np.testing.assert_array_equal(dense_indices(100, 4, 4, None), [43, 47, 51, 55])
    np.testing.assert_array_equal(dense_indices(13, 4, 4, None), [0, 4, 8, 12])  # exact fit
    np.testing.assert_array_equal(dense_indices(14, 4, 4, None), [0, 4, 8, 12])  # slack 1 -> 0
    np.testing.assert_array_equal(dense_indices(40, 8, 2, None), np.arange(12, 27, 2))
    assert dense_indices(100, 4, 4, None).dtype == np.int64


def test_dense_indices_random_start_within_bounds() -> None:
    out = dense_indices(100, 4, 4, np.random.default_rng(0))
    start = int(np.random.default_rng(0).integers(0, 88))  # the same draw, by hand
    np.testing.assert_array_equal(out, start + np.array([0, 4, 8, 12]))
    rng = np.random.default_rng(1)
    starts = {int(dense_indices(100, 4, 4, rng)[0]) for _ in range(3000)}
    assert starts == set(range(88))  # every valid start, nothing else


def test_dense_indices_short_video_clamps_to_last_frame() -> None:
    for rng in (None, np.random.default_rng(0)):
        np.testing.assert_array_equal(dense_indices(10, 4, 4, rng), [0, 4, 8, 9])
        np.testing.assert_array_equal(dense_indices(1, 3, 2, rng), [0, 0, 0])
        np.testing.assert_array_equal(
            dense_indices(32, 16, 4, rng)[-9:], [28, 31, 31, 31, 31, 31, 31, 31, 31]
        )


def test_dense_indices_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="num_video_frames"):
        dense_indices(0, 16, 4, None)
    with pytest.raises(ValueError, match="num_frames"):
        dense_indices(10, 0, 4, None)
    with pytest.raises(ValueError, match="sampling_rate"):
        dense_indices(10, 4, 0, None)


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("rel", [rel for rel, _ in VIDEO_FOLDER_CLIPS[:3]])  # mp4, webm, avi
def test_read_frames_decodes_the_requested_frames(video_folder: Path, rel: str) -> None:
    path = video_folder / rel
    assert video_length(path) == CLIP_FRAMES
    wanted = [0, 5, 17, 39, 39, 2]
    seen_lengths = []

    def sampler(n: int) -> np.ndarray:
        seen_lengths.append(n)
        return np.array(wanted)

    frames = read_frames(path, sampler)
    assert seen_lengths == [CLIP_FRAMES]
    assert frames.dtype == torch.uint8
    assert frames.shape == (len(wanted), CLIP_HEIGHT, CLIP_WIDTH, 3)
    assert decoded_frame_ids(frames) == wanted


def test_read_frames_dense_window(video_folder: Path) -> None:
    path = video_folder / VIDEO_FOLDER_CLIPS[0][0]
    frames = read_frames(path, lambda n: dense_indices(n, 8, 2, None), num_threads=2)
    assert decoded_frame_ids(frames) == list(range(12, 27, 2))


SHARED = [
    ("k400_style_340x256_h264.mp4", 300, 256, 340),
    ("ucf_style_320x240_mpeg4.avi", 164, 240, 320),
    ("short_32frames_h264.mp4", 32, 256, 340),
    ("ssv2_style_426x240_vp9.webm", 50, 240, 426),
]


@pytest.mark.parametrize(("name", "length", "height", "width"), SHARED)
def test_read_frames_shared_real_clips(name: str, length: int, height: int, width: int) -> None:
    path = SHARED_VIDEOS / name
    if not path.is_file():
        pytest.skip(f"shared test videos not found at {SHARED_VIDEOS}")
    assert video_length(path) == length
    frames = read_frames(path, lambda n: dense_indices(n, 16, 4, None))
    assert frames.shape == (16, height, width, 3)
    assert frames.dtype == torch.uint8
    assert frames.float().std() > 1.0  # real pictures, not blank
    last = read_frames(path, lambda n: np.array([n - 1]))  # the last frame decodes too
    assert last.shape == (1, height, width, 3)


def _broken_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    text = folder / "text.mp4"
    text.write_text("this is not a video\n" * 20)
    return {"empty": empty, "text": text, "missing": folder / "missing.mp4"}


@pytest.mark.parametrize("kind", ["empty", "text", "missing"])
def test_read_frames_broken_file_raises_decode_error(tmp_path: Path, kind: str) -> None:
    path = _broken_files(tmp_path)[kind]
    with pytest.raises(VideoDecodeError, match=re.escape(str(path))) as info:
        read_frames(path, lambda n: np.arange(min(n, 4)))
    assert info.value.path == str(path)
    with pytest.raises(VideoDecodeError, match=re.escape(str(path))):
        video_length(path)


def test_video_decode_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(VideoDecodeError("/x/a.mp4", "file not found")))
    assert (err.path, err.cause, str(err)) == (
        "/x/a.mp4",
        "file not found",
        "cannot decode video /x/a.mp4: file not found",
    )


def test_read_frames_rejects_out_of_range_sampler(video_folder: Path) -> None:
    path = video_folder / VIDEO_FOLDER_CLIPS[0][0]
    with pytest.raises(ValueError, match="outside"):
        read_frames(path, lambda n: np.array([0, n]))


# ----------------------------------------------------------------------------------- transforms


def test_multiscale_crop_sizes_match_the_official_rule() -> None:
    crop = MultiScaleCrop(48)  # scales 1, .875, .75, .66; max_distort 1
    # short side 64 -> int(64 * s) = 64, 56, 48, 42; 48 is within 3 of 48 (snapped, unchanged)
    lengths = [64, 56, 48, 42]
    expected = {(lengths[i], lengths[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    pairs = crop.crop_sizes(64, 80)
    assert len(pairs) == 10
    assert set(pairs) == expected
    # snapping: short side 100 -> 100, 87, 75, 66; 66 is within 3 of size 64 -> 64
    assert {h for h, _ in MultiScaleCrop(64).crop_sizes(100, 120)} == {100, 87, 75, 64}


def test_multiscale_crop_grid_offsets() -> None:
    crop = MultiScaleCrop(48)
    # 64x80 image, 48x56 crop: steps (64-48)//4 = 4 and (80-56)//4 = 6
    offsets = crop.grid_offsets(64, 80, 48, 56)
    assert len(offsets) == 13
    assert offsets[:5] == [(0, 0), (0, 24), (16, 0), (16, 24), (8, 12)]
    more = {(8, 0), (8, 24), (16, 12), (0, 12), (4, 6), (4, 18), (12, 6), (12, 18)}
    assert set(offsets[5:]) == more
    assert len(MultiScaleCrop(48, more_fix_crop=False).grid_offsets(64, 80, 48, 56)) == 5


def test_multiscale_crop_draws_only_allowed_windows() -> None:
    crop = MultiScaleCrop(48)
    rng = np.random.default_rng(0)
    allowed = set(crop.crop_sizes(64, 80))
    seen = set()
    for _ in range(500):
        top, left, h, w = crop.sample(64, 80, rng)
        assert (h, w) in allowed
        assert (top, left) in crop.grid_offsets(64, 80, h, w)
        assert 0 <= top <= 64 - h and 0 <= left <= 80 - w
        seen.add((h, w))
    assert seen == allowed
    free = MultiScaleCrop(48, fix_crop=False)
    for _ in range(200):
        top, left, h, w = free.sample(64, 80, rng)
        assert 0 <= top <= 64 - h and 0 <= left <= 80 - w


def test_multiscale_crop_same_window_on_every_frame() -> None:
    g = torch.Generator().manual_seed(0)
    picture = torch.rand(3, 64, 80, generator=g) * 200
    clip = torch.stack([picture + 5.0 * t for t in range(6)])  # (T, C, H, W) float
    crop = MultiScaleCrop(48)
    out = crop(clip, np.random.default_rng(3))
    assert out.shape == (6, 3, 48, 48) and out.dtype == torch.float32
    for t in range(6):  # resizing is linear: frame t is frame 0 plus 5 t everywhere
        torch.testing.assert_close(out[t] - 5.0 * t, out[0], atol=1e-3, rtol=0)
    # and it is the window that sample() draws with the same generator state
    top, left, h, w = crop.sample(64, 80, np.random.default_rng(3))
    window = clip[:, :, top : top + h, left : left + w]
    expected = F.interpolate(window, size=(48, 48), mode="bilinear", antialias=True)
    torch.testing.assert_close(out, expected)


def test_multiscale_crop_uint8_stays_close_to_float() -> None:
    clip = torch.randint(0, 256, (4, 3, 64, 80), dtype=torch.uint8)
    crop = MultiScaleCrop(40)
    u = crop(clip, np.random.default_rng(5))
    f = crop(clip.float(), np.random.default_rng(5))
    assert u.dtype == torch.uint8 and u.shape == (4, 3, 40, 40)
    diff = (u.float() - f).abs()
    assert float(diff.max()) < 1.01 and float(diff.mean()) < 0.35  # fixed-point weights, rounding


def test_center_crop_resize_takes_the_middle() -> None:
    clip = torch.zeros(2, 3, 40, 100)
    clip[..., 30:70] = 100.0  # the central 40x40 square
    out = center_crop_resize(clip, 20)
    assert out.shape == (2, 3, 20, 20)
    torch.testing.assert_close(out, torch.full_like(out, 100.0))


def test_normalize_matches_hand_computation() -> None:
    clip = torch.tensor([0, 128, 255, 64], dtype=torch.uint8).view(1, 1, 1, 4).repeat(2, 3, 1, 1)
    clip[1] = 255 - clip[1]
    out = normalize_video(clip.permute(1, 0, 2, 3))  # (C, T, H, W), as the device does it
    assert out.shape == (3, 2, 1, 4) and out.dtype == torch.float32 and out.is_contiguous()
    for c in range(3):
        for t in range(2):
            for x in range(4):
                v = float(clip[t, c, 0, x])
                expected = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
                assert abs(float(out[c, t, 0, x]) - expected) < 1e-5
    custom = normalize_video(clip.permute(1, 0, 2, 3).float(), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert abs(float(custom[0, 0, 0, 2]) - 1.0) < 1e-6  # 255 -> (1 - .5) / .5


def test_pretrain_transform_shape_dtype_and_determinism() -> None:
    frames = torch.randint(0, 256, (8, 64, 80, 3), dtype=torch.uint8)
    transform = PretrainTransform(32, flip=True)
    out = transform(frames, np.random.default_rng(0))
    # uint8 to the device: nothing converts to float in the worker
    assert out.shape == (3, 8, 32, 32) and out.dtype == torch.uint8
    assert out.permute(1, 2, 3, 0).is_contiguous()  # channels last: no transpose in the worker
    torch.testing.assert_close(out, transform(frames, np.random.default_rng(0)))


def test_pretrain_transform_flip() -> None:
    # square frames and a single scale: the crop is the whole picture, only the flip varies
    frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    frames[:, :, :8] = 255  # bright left band
    plain = PretrainTransform(16, scales=(1.0,), flip=False)
    flipping = PretrainTransform(16, scales=(1.0,), flip=True)
    reference = plain(frames, np.random.default_rng(0))
    outcomes = set()
    for seed in range(20):
        out = flipping(frames, np.random.default_rng(seed))
        if torch.equal(out, reference):
            outcomes.add("plain")
        else:
            torch.testing.assert_close(out, reference.flip(-1))
            outcomes.add("flipped")
    assert outcomes == {"plain", "flipped"}


def test_eval_transform_is_deterministic() -> None:
    frames = torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8)
    transform = EvalTransform(32)
    out = transform(frames)
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.uint8
    torch.testing.assert_close(out, transform(frames, np.random.default_rng(9)))


# -------------------------------------------------------------------------------------- dataset


def _records(folder: Path) -> list[VideoRecord]:
    return read_list(folder / "train.csv", folder)


def _identity(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return frames


def test_dataset_items_have_the_right_shapes(video_folder: Path) -> None:
    records = _records(video_folder)
    for train, transform in ((True, PretrainTransform(32)), (False, EvalTransform(32))):
        ds = VideoClipDataset(
            records, num_frames=8, sampling_rate=2, transform=transform, train=train
        )
        assert len(ds) == len(VIDEO_FOLDER_CLIPS)
        item = ds[3]
        assert item["video"].shape == (3, 8, 32, 32) and item["video"].dtype == torch.uint8
        assert item["label"].dtype == torch.int64 and int(item["label"]) == VIDEO_FOLDER_CLIPS[3][1]
        assert item["index"].dtype == torch.int64 and int(item["index"]) == 3


def test_dataset_frame_windows(video_folder: Path) -> None:
    records = _records(video_folder)
    val = VideoClipDataset(records, num_frames=8, sampling_rate=2, transform=_identity, train=False)
    assert decoded_frame_ids(val[0]["video"]) == list(range(12, 27, 2))  # centered, always
    assert decoded_frame_ids(val[0]["video"]) == list(range(12, 27, 2))

    train = VideoClipDataset(
        records, num_frames=8, sampling_rate=2, transform=_identity, train=True
    )
    torch.manual_seed(0)
    starts = []
    for _ in range(12):
        ids = decoded_frame_ids(train[1]["video"])
        assert ids == list(range(ids[0], ids[0] + 16, 2))  # a dense window, stride 2
        assert 0 <= ids[0] <= CLIP_FRAMES - 15
        starts.append(ids[0])
    assert len(set(starts)) > 3  # random across calls
    torch.manual_seed(0)  # ... and reproducible from torch's seed
    assert decoded_frame_ids(train[1]["video"]) == list(range(starts[0], starts[0] + 16, 2))


def test_dataset_skips_broken_videos_to_the_next_index(video_folder: Path, tmp_path: Path) -> None:
    good = _records(video_folder)
    broken = _broken_files(tmp_path)
    records = [
        good[0],
        VideoRecord(broken["empty"], 7, 2),
        VideoRecord(broken["text"], 8, 3),
        good[1],
    ]
    ds = VideoClipDataset(
        records, num_frames=4, sampling_rate=2, transform=EvalTransform(16), train=False
    )
    with pytest.warns(RuntimeWarning) as caught:
        item = ds[1]
    assert int(item["index"]) == 3 and int(item["label"]) == good[1].label
    messages = [str(w.message) for w in caught]
    assert any(str(broken["empty"]) in m for m in messages)
    assert any(str(broken["text"]) in m for m in messages)
    assert ds.failures == [str(broken["empty"]), str(broken["text"])]
    with pytest.warns(RuntimeWarning):  # deterministic: the same replacement again
        assert int(ds[2]["index"]) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # good videos: no warning
        assert int(ds[0]["index"]) == 0


def _count_decodes(monkeypatch) -> list[int]:
    """Frames returned by each ``read_frames`` call the datasets module makes (filled as it
    runs)."""
    import videomae.data.datasets as datasets

    decoded: list[int] = []
    real = datasets.read_frames

    def counting(path, sampler, *args, **kw):
        frames = real(path, sampler, *args, **kw)
        decoded.append(frames.shape[0])
        return frames

    monkeypatch.setattr(datasets, "read_frames", counting)
    return decoded


def test_frame_cache_gives_the_same_items_and_decodes_each_video_once(
    video_folder: Path, monkeypatch
) -> None:
    records = _records(video_folder)
    kwargs = dict(num_frames=8, sampling_rate=2, transform=PretrainTransform(32), train=True)
    plain = VideoClipDataset(records, **kwargs)
    cached = VideoClipDataset(records, frame_cache_mb=64, **kwargs)
    calls = _count_decodes(monkeypatch)
    for epoch in range(3):
        for i in range(len(records)):
            a, b = plain[(i, epoch)], cached[(i, epoch)]
            assert torch.equal(a["video"], b["video"]) and int(a["index"]) == int(b["index"])
    # the plain dataset decodes every item; the cached one each video once
    assert len(calls) == 3 * len(records) + len(records)
    assert len(cached.cache) == len(records)
    assert cached.cache.bytes == sum(
        v.numel() for v in cached.cache._videos.values()
    )  # uint8: one byte per value


def test_frame_cache_keeps_what_fits_and_then_decodes_clip_by_clip(
    video_folder: Path, monkeypatch
) -> None:
    from videomae.data.datasets import FrameCache

    cache = FrameCache(max_bytes=300)
    video = {k: torch.zeros(100, dtype=torch.uint8) for k in "abcd"}
    assert cache.put(("big", 0, None), torch.zeros(301, dtype=torch.uint8)) is False
    assert not cache.full and not cache.wants(("big", 0, None))  # too large: never again
    for k in "abc":
        assert cache.put((k, 0, None), video[k])
    assert cache.put(("d", 0, None), video["d"]) is False and cache.full
    assert cache.get(("a", 0, None)) is video["a"] and cache.bytes == 300
    assert not cache.wants(("e", 0, None))

    # a dataset whose cache holds one video: the others are decoded clip by clip (8 frames)
    records = _records(video_folder)
    decoded = _count_decodes(monkeypatch)
    one_video = CLIP_FRAMES * CLIP_HEIGHT * CLIP_WIDTH * 3 / 2**20  # MiB of one decoded file
    kwargs = dict(num_frames=8, sampling_rate=2, transform=_identity, train=False)
    ds = VideoClipDataset(records, frame_cache_mb=one_video * 1.5, **kwargs)
    plain = VideoClipDataset(records, **kwargs)
    for _ in range(2):
        for i in range(len(records)):
            assert torch.equal(ds[i]["video"], plain[i]["video"])
    assert len(ds.cache) == 1 and ds.cache.full
    assert decoded.count(CLIP_FRAMES) == 2  # whole: the kept one, and the one that filled it


def test_frame_cache_still_skips_broken_videos(video_folder: Path, tmp_path: Path) -> None:
    good = _records(video_folder)
    broken = _broken_files(tmp_path)
    records = [good[0], VideoRecord(broken["text"], 8, 3), good[1]]
    ds = VideoClipDataset(
        records,
        num_frames=4,
        sampling_rate=2,
        transform=EvalTransform(16),
        train=False,
        frame_cache_mb=64,
    )
    with pytest.warns(RuntimeWarning, match=str(broken["text"])):
        assert int(ds[1]["index"]) == 2
    assert len(ds.cache) == 1 and ds.failures == [str(broken["text"])]


def test_dataset_on_error_raise(video_folder: Path, tmp_path: Path) -> None:
    broken = _broken_files(tmp_path)
    records = [VideoRecord(broken["text"], 0, 1), *_records(video_folder)]
    ds = VideoClipDataset(
        records,
        num_frames=4,
        sampling_rate=2,
        transform=EvalTransform(16),
        train=False,
        on_error="raise",
    )
    with pytest.raises(VideoDecodeError, match=re.escape(str(broken["text"]))):
        ds[0]
    assert ds.failures == [str(broken["text"])]
    # the type survives a DataLoader worker (re-raised in the main process from its message)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(VideoDecodeError, match=re.escape(str(broken["text"]))):
        next(iter(loader))


def test_dataset_gives_up_after_max_tries(tmp_path: Path) -> None:
    broken = _broken_files(tmp_path)
    records = [VideoRecord(p, 0, i + 1) for i, p in enumerate(broken.values())]
    ds = VideoClipDataset(
        records, num_frames=4, sampling_rate=2, transform=EvalTransform(16), train=False
    )
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="3 videos") as info:
        ds[0]
    for path in broken.values():
        assert str(path) in str(info.value)


def test_dataset_rejects_unknown_on_error() -> None:
    with pytest.raises(ValueError, match="on_error"):
        VideoClipDataset(
            [], num_frames=4, sampling_rate=2, transform=_identity, train=True, on_error="ignore"
        )


# ----------------------------------------------------------------------------------- datamodule


def _dm(root: Path, **overrides) -> VideoDataModule:
    kwargs = dict(
        root=str(root),
        train_list="train.csv",
        val_list="val.csv",
        num_frames=8,
        sampling_rate=2,
        img_size=32,
        batch_size=2,
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
        flip=True,
        seed=0,
    )
    kwargs.update(overrides)
    return VideoDataModule(**kwargs)


def test_datamodule_missing_root_names_path_and_hint(tmp_path: Path) -> None:
    root = tmp_path / "k400"
    with pytest.raises(FileNotFoundError) as info:
        _dm(root, prepare_hint="Download Kinetics-400 into data/k400.")
    assert str(root) in str(info.value)
    assert "Download Kinetics-400 into data/k400." in str(info.value)


def test_datamodule_missing_list_names_path(video_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv") as info:
        _dm(video_folder, val_list="nope.csv", prepare_hint="make the lists")
    assert str(video_folder / "nope.csv") in str(info.value)
    assert "make the lists" in str(info.value)
    absolute = tmp_path / "abs.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(absolute))):
        _dm(video_folder, train_list=str(absolute))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_frames", 0),
        ("sampling_rate", -1),
        ("img_size", "224"),
        ("batch_size", 0),
        ("num_workers", -1),
        ("num_workers", "many"),
        ("decode_threads", 1.5),
        ("on_error", "ignore"),
        ("scales", []),
        ("scales", [1.0, 1.5]),
        ("flip", "yes"),
        ("synthetic", 3),
        ("frame_cache_mb", -1),
    ],
)
def test_datamodule_bad_values_name_the_key(video_folder: Path, key: str, value) -> None:
    with pytest.raises(ValueError, match=f"data.{key}"):
        _dm(video_folder, **{key: value})


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 15 workers, never started
def test_datamodule_auto_workers_per_process(
    video_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``num_workers="auto"``: the loaders get auto_workers' count for the processes on the
    node (the attached trainer's devices), and it is logged; an integer is kept as it is."""
    from videomae.data import datamodule
    from videomae.utils import runs

    monkeypatch.setattr(runs, "usable_cores", lambda: 16)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(datamodule, "shm_free_bytes", lambda: None)  # not this host's /dev/shm
    dm = _dm(video_folder, num_workers="auto", persistent_workers=False)
    dm.setup("fit")
    with caplog.at_level(logging.INFO, logger="videomae.data.datamodule"):
        assert dm.train_dataloader().num_workers == 15
    assert "data.num_workers=auto: 15 loader workers for train per process" in caplog.text
    ranks = SimpleNamespace(num_devices=4, state=SimpleNamespace(fn="fit"))
    monkeypatch.setattr(type(dm), "_trainer_or_none", lambda self: ranks)
    assert dm._loader_plan("train") == (3, 2)  # 16 cores shared by 4 ranks: 4 each, less one
    assert _dm(video_folder, num_workers=7)._loader_plan("train") == (7, 2)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_loader_workers_fit_the_shared_memory(
    video_folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Workers hand batches over in /dev/shm, up to two each, and one more is being handed
    over: ``auto`` takes no more workers than fit (then one worker with one batch ready, then
    none), ranks of a node share it, validation while fitting gets what training leaves; a set
    count that does not fit warns, and one where not one batch fits fails before any work."""
    from videomae.data import datamodule
    from videomae.utils import runs

    monkeypatch.setattr(runs, "usable_cores", lambda: 16)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    views = dict(num_sample=2, test_num_clips=2, test_num_crops=3)
    dm = _dm(video_folder, num_workers="auto", **views)
    batch = dm._batch_bytes("train")
    assert batch == 2 * 2 * 3 * 8 * 32 * 32  # videos x clips x C x T x H x W, uint8
    free = {"bytes": 7 * batch}  # 3 workers x 2 batches, and one being handed over
    monkeypatch.setattr(datamodule, "shm_free_bytes", lambda: free["bytes"])
    with caplog.at_level(logging.WARNING, logger="videomae.data.datamodule"):
        assert dm._loader_plan("train") == (3, 2)
    assert "3 loader workers for train instead of 15" in caplog.text
    assert "--shm-size" in caplog.text and "data.num_sample" in caplog.text
    assert dm._loader_plan("val") == (6, 2)  # half the bytes a batch: 14 of them
    assert dm._loader_plan("test") == (1, 1)  # 3x the bytes a batch (6 views): 2 fit
    free["bytes"] = 2 * batch
    assert dm._loader_plan("train") == (1, 1)  # one worker, one batch ready
    free["bytes"] = batch - 1  # not one batch
    assert dm._loader_plan("train") == (0, 2)
    # while fitting, validation (mid-epoch) gets what the training loader leaves
    fitting = SimpleNamespace(num_devices=1, state=SimpleNamespace(fn="fit"))
    monkeypatch.setattr(type(dm), "_trainer_or_none", lambda self: fitting)
    free["bytes"] = 10 * batch  # training: 4 workers x 2 + 1 = 9 batches; 2 val batches left
    assert dm._loader_plan("train") == (4, 2) and dm._loader_plan("val") == (1, 1)
    two_ranks = SimpleNamespace(num_devices=2, state=SimpleNamespace(fn="validate"))
    monkeypatch.setattr(type(dm), "_trainer_or_none", lambda self: two_ranks)
    free["bytes"] = 14 * batch  # 7 for each rank
    assert dm._loader_plan("train") == (3, 2)
    monkeypatch.setattr(type(dm), "_trainer_or_none", lambda self: None)
    # a set count
    free["bytes"] = 3 * batch
    with pytest.warns(RuntimeWarning, match=r"data.num_workers=4 may exhaust shared memory"):
        assert _dm(video_folder, num_workers=4, **views)._loader_plan("train") == (4, 2)
    free["bytes"] = batch - 1
    with pytest.raises(ConfigError, match=r"data.num_workers=2: no test batch fits") as info:
        _dm(video_folder, num_workers=2, **views)._loader_plan("test")
    assert "data.test_batch_size" in str(info.value) and "data.num_workers=0" in str(info.value)
    assert _dm(video_folder, num_workers=0)._loader_plan("train") == (0, 2)  # no shm used
    free["bytes"] = None  # no /dev/shm: nothing to check
    assert dm._loader_plan("train") == (15, 2)


def test_batch_bytes_are_what_the_loaders_make(video_folder: Path) -> None:
    """The shared-memory estimate is the size of the batches the loaders return."""
    dm = _dm(video_folder, mode="finetune", num_sample=2, test_num_clips=2, test_num_crops=3)
    dm.setup("fit")
    dm.setup("test")
    loaders = {
        "train": dm.train_dataloader(),
        "val": dm.val_dataloader(),
        "test": dm.test_dataloader(),
    }
    for stage, loader in loaders.items():
        video = next(iter(loader))["video"]
        assert video.dtype == torch.uint8 and video.nbytes == dm._batch_bytes(stage), stage


def test_datamodule_bad_value_message() -> None:
    with pytest.raises(ValueError, match=r"data.num_frames must be >= 1, got 0"):
        _dm(Path("/nonexistent"), num_frames=0)


def test_datamodule_empty_train_list(video_folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    dm = _dm(video_folder, train_list=str(empty), val_list=None)
    with pytest.raises(ValueError, match=re.escape(str(empty))):
        dm.setup("fit")


def test_datamodule_facts(video_folder: Path) -> None:
    dm = _dm(video_folder)
    assert dm.num_classes == 3
    assert dm.num_train_videos == len(VIDEO_FOLDER_CLIPS)
    with pytest.raises(ValueError, match="batch_size"):
        _dm(video_folder, batch_size=7).setup("fit")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_datamodule_loop(video_folder: Path, num_workers: int) -> None:
    dm = _dm(video_folder, num_workers=num_workers, persistent_workers=True)
    dm.prepare_data()
    dm.setup("fit")
    train = dm.train_dataloader()
    assert train.persistent_workers == (num_workers > 0)
    seen = []
    for _ in range(2):  # two epochs (persistent workers are reused)
        batches = list(train)
        assert len(batches) == 3  # 6 videos, batch 2
        for batch in batches:
            assert batch["video"].shape == (2, 3, 8, 32, 32)
            assert batch["video"].dtype == torch.uint8
            assert batch["label"].shape == (2,) and batch["label"].dtype == torch.int64
            assert batch["index"].shape == (2,)
        seen.append(sorted(torch.cat([b["index"] for b in batches]).tolist()))
    assert seen[0] == seen[1] == list(range(6))

    val = list(dm.val_dataloader())
    assert [b["index"].tolist() for b in val] == [[0, 1], [2, 3], [4, 5]]  # in order, all
    assert torch.cat([b["label"] for b in val]).tolist() == [lab for _, lab in VIDEO_FOLDER_CLIPS]


def test_datamodule_training_clips_depend_on_seed_epoch_and_index_only(video_folder: Path):
    """Training batches are a function of (data seed, epoch): the same with 0 or 2 workers and
    whatever torch's global generator holds; another epoch or another seed gives others."""

    def epoch(seed: int, workers: int, number: int) -> list[torch.Tensor]:
        dm = _dm(video_folder, num_workers=workers, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(number)
        return [b["video"] for b in loader]

    torch.manual_seed(1)
    first = epoch(seed=7, workers=0, number=0)
    torch.manual_seed(2)
    again = epoch(seed=7, workers=2, number=0)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)
    for other in (epoch(seed=7, workers=0, number=1), epoch(seed=8, workers=0, number=0)):
        assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_datamodule_no_val_list(video_folder: Path) -> None:
    dm = _dm(video_folder, val_list=None)
    dm.setup("fit")
    assert dm.val_dataloader() == []


def test_datamodule_synthetic_prepare_data_calls_ensure_synthetic(
    video_folder: Path, tmp_path: Path, monkeypatch
) -> None:
    import videomae.data.synthetic as synthetic

    calls = []

    def fake_ensure(root, spec, progress=True):
        calls.append((Path(root), spec))
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{video_folder / rel} {label}\n" for rel, label in VIDEO_FOLDER_CLIPS)
        for name in ("train.csv", "val.csv"):
            (root / name).write_text(lines)
        return {"train": root / "train.csv", "val": root / "val.csv", "labels": root / "l.txt"}

    monkeypatch.setattr(synthetic, "ensure_synthetic", fake_ensure)
    spec = dict(num_classes=3, train_per_class=2, val_per_class=1, num_frames=16)
    root = tmp_path / "synthetic"  # does not exist yet: fine for a synthetic set
    dm = _dm(root, synthetic=spec)
    assert dm.num_classes == 3  # from the spec, before the set exists
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        dm.setup("fit")
    dm.prepare_data()
    assert calls == [(root, synthetic.SyntheticSpec(**spec))]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 8, 32, 32)


def test_datamodule_real_synthetic_set(tmp_path: Path) -> None:
    spec = dict(
        num_classes=2, train_per_class=2, val_per_class=1, num_frames=16, height=32, width=32
    )
    dm = _dm(tmp_path / "synthetic", synthetic=spec, img_size=16)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.num_train_videos == 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 8, 16, 16)
    assert len(list(dm.val_dataloader())) == 1


def test_write_video_roundtrip_vp9(tmp_path: Path) -> None:
    # (decord 0.6 fails on frames 16, 24, 48 or 72 pixels wide, any codec: avoid those widths)
    path = write_video(tmp_path / "v.webm", level_frames(10, 32, 64), fps=12)
    frames = read_frames(path, lambda n: np.arange(n))
    assert decoded_frame_ids(frames) == list(range(10))


def test_nvdec_loaders_spawn_their_workers(video_folder: Path) -> None:
    """CUDA (NVDEC) cannot start in a fork of a process that uses CUDA: nvdec workers spawn."""
    for backend, workers, context in (("nvdec", 1, "spawn"), ("nvdec", 0, None), ("auto", 1, None)):
        dm = _dm(video_folder, backend=backend, num_workers=workers)
        dm.setup("fit")
        got = dm.train_dataloader().multiprocessing_context
        assert (got.get_start_method() if got is not None else None) == context, backend
