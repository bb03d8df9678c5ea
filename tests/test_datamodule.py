"""The data module and dataset on real small videos: stages, views, repeated augmentation,
list formats, missing and broken files, and a training run over a list full of broken files."""

from __future__ import annotations

import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import lightning as L
import numpy as np
import pytest
import torch

from conftest import CLIP_HEIGHT, CLIP_WIDTH, VIDEO_FOLDER_CLIPS, level_frames, write_video
from test_data import _dm as _data_dm
from videomae.callbacks.broken_videos import BrokenVideoLogger
from videomae.data.datamodule import VideoDataModule
from videomae.data.datasets import VideoClipDataset
from videomae.data.lists import VideoRecord
from videomae.data.transforms import EvalTransform
from videomae.errors import ConfigError


def _dm(root: Path, **overrides) -> VideoDataModule:
    """``test_data``'s small data module with 4-frame clips."""
    return _data_dm(root, **{"num_frames": 4, **overrides})


# ----------------------------------------------------------------------------------- stages


def test_finetune_mode_with_repeated_augmentation(video_folder: Path) -> None:
    L.seed_everything(0)
    dm = _dm(video_folder, mode="finetune", num_sample=3, flip=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    # 2 videos x 3 augmented clips each, adjacent, labels and indices repeated
    assert batch["video"].shape == (6, 3, 4, 32, 32)
    assert batch["label"].tolist()[0::3] == batch["label"].tolist()[1::3]
    assert batch["index"].tolist() == np.repeat(batch["index"].tolist()[::3], 3).tolist()
    first = batch["video"][:3]
    assert not torch.equal(first[0], first[1])  # differently augmented
    assert torch.isfinite(batch["video"]).all()


@pytest.mark.parametrize("where", ["workers", "device"])
def test_training_items_stack_once_into_the_batch(video_folder: Path, where: str) -> None:
    """The training loader's repeated-augmentation items carry lists of clips, stacked once by
    the collation: the same batch as stacking each video's clips first, every per-clip field
    (video, erase boxes, RandAugment rows) one row per clip."""
    from videomae.data.datamodule import _flatten_repeated

    dm = _dm(video_folder, mode="finetune", num_sample=3, rand_augment_on=where)
    dm.setup("fit")
    ds = dm.train_set
    assert not ds.stack_samples and dm.val_set.stack_samples
    stacked = VideoClipDataset(
        ds.records,
        num_frames=ds.num_frames,
        sampling_rate=ds.sampling_rate,
        transform=ds.transform,
        train=True,
        num_sample=3,
        seed=ds.seed,
    )
    items = [ds[(i, 0)] for i in range(2)]
    assert isinstance(items[0]["video"], list) and len(items[0]["video"]) == 3
    once = _flatten_repeated(items)
    twice = _flatten_repeated([stacked[(i, 0)] for i in range(2)])
    assert once.keys() == twice.keys()
    assert {"erase", "video"} <= once.keys() and ("augment" in once) == (where == "device")
    for key in once:
        assert torch.equal(once[key], twice[key]), key
    assert once["video"].shape == (6, 3, 4, 32, 32) and once["erase"].shape == (6, 6)
    assert once["index"].tolist() == [0, 0, 0, 1, 1, 1]


def test_rand_augment_on_the_device_finishes_to_the_same_batch(video_folder: Path) -> None:
    """data.rand_augment_on=device: the batch carries each clip's drawn ops (host-side rows,
    num_sample rows per video) and finishing it on the device gives the workers' batch."""
    from videomae.data.device import finish_batch

    batches = {}
    for where in ("workers", "device"):
        L.seed_everything(0)
        dm = _dm(video_folder, mode="finetune", num_sample=2, rand_augment_on=where)
        dm.setup("fit")
        batch = dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
        batches[where] = batch
    rows = batches["device"]["augment"]
    assert isinstance(rows, list) and len(rows) == 4 and len(rows[0]) == 4 + 2 * 4  # n4 slots
    assert "augment" not in batches["workers"]
    done = {where: finish_batch(dict(b))["video"] for where, b in batches.items()}
    assert torch.equal(done["workers"], done["device"])
    with pytest.raises(ConfigError, match=r"data\.rand_augment_on"):
        _dm(video_folder, rand_augment_on="gpu")


def test_test_loader_stacks_every_view(video_folder: Path) -> None:
    dm = _dm(video_folder, test_num_clips=2, test_num_crops=3, test_batch_size=4)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    assert [b["video"].shape for b in batches] == [(4, 6, 3, 4, 32, 32), (2, 6, 3, 4, 32, 32)]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(6))  # val list
    # views differ from each other (other windows and crops of a moving picture)
    views = batches[0]["video"][0]
    assert not torch.equal(views[0], views[3])  # clip 0 vs clip 1, same crop


def test_test_views_match_the_validation_view_for_one_view(video_folder: Path) -> None:
    dm = _dm(video_folder)
    dm.setup("test")
    dm.setup("validate")
    val = next(iter(dm.val_dataloader()))["video"]
    test = next(iter(dm.test_dataloader()))["video"]
    assert test.shape == (2, 1, 3, 4, 32, 32)
    torch.testing.assert_close(test[:, 0], val)


def test_segment_sampling_dataset(video_folder: Path) -> None:
    records = [VideoRecord(video_folder / VIDEO_FOLDER_CLIPS[0][0], 0, 1)]
    ds = VideoClipDataset(
        records,
        num_frames=4,
        sampling_rate=1,
        transform=lambda frames, rng: frames,
        train=False,
        sampling="segment",
    )
    frames = ds[0]["video"]
    assert frames.shape[0] == 4
    assert ds.frame_indices(40, None).tolist() == list(ds.frame_indices(40, None))
    assert np.all(np.diff(ds.frame_indices(40, None)) > 0)


def test_separate_test_list_and_label_names(video_folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "set"
    shutil.copytree(video_folder, root)
    (root / "test.csv").write_text(f"{VIDEO_FOLDER_CLIPS[2][0]} 2\n")
    (root / "labels.txt").write_text("zero\none\ntwo\n")
    dm = _dm(root, test_list="test.csv", label_names="labels.txt", num_classes=5)
    assert dm.num_classes == 5
    assert dm.class_names == ["zero", "one", "two"]
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["label"].tolist() == [2] and batch["video"].shape[0] == 1


def test_label_above_num_classes_names_list_and_line(video_folder: Path) -> None:
    dm = _dm(video_folder, num_classes=2)
    with pytest.raises(ValueError, match=r"train_list: .*train\.csv:3: label 2 .*num_classes=2"):
        dm.setup("fit")


def test_new_bad_values_name_the_key(video_folder: Path) -> None:
    for key, value in [
        ("mode", "pretraining"),
        ("sampling", "uniform"),
        ("num_sample", 0),
        ("test_num_clips", 0),
        ("reprob", 1.5),
        ("train_scale", [0.5, 0.1]),
        ("rand_augment", 7),
        ("backend", "opencv"),
        ("list_format", "csv"),
        ("short_side", 0),
    ]:
        with pytest.raises(ValueError, match=f"data.{key}"):
            _dm(video_folder, **{key: value})


# ----------------------------------------------------------------------------------- list kinds


def test_folder_tree_lists(video_folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for split in ("train", "val"):
        for cls, clips in (("walk", [0, 3]), ("jump", [1, 4]), ("run", [2, 5])):
            for i in clips:
                src = video_folder / VIDEO_FOLDER_CLIPS[i][0]
                dst = root / split / cls / f"v{i}{src.suffix}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
    dm = _dm(root, train_list="train", val_list="val")
    assert dm.class_names == ["jump", "run", "walk"]  # sorted folder names
    assert dm.num_classes == 3
    dm.setup("fit")
    assert sorted(r.label for r in dm.train_records) == [0, 0, 1, 1, 2, 2]
    assert next(iter(dm.train_dataloader()))["video"].shape == (2, 3, 4, 32, 32)


def test_frame_folder_records(tmp_path: Path) -> None:
    from PIL import Image

    frames = level_frames(12, CLIP_HEIGHT, CLIP_WIDTH)
    folder = tmp_path / "frames" / "v0"
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"img_{i:05d}.jpg", quality=95)
    (tmp_path / "train.csv").write_text("frames/v0 1 12 -1\nframes/v0 3 8 -1\n")
    dm = _dm(tmp_path, val_list=None, num_classes=2)
    dm.setup("fit")
    assert dm.train_records[0].label == -1 and dm.train_records[0].total == 12
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 32, 32)


# ----------------------------------------------------------------------------------- broken files


def write_broken_files(folder: Path) -> dict[str, Path]:
    """One file of each broken kind (plus a path that does not exist) under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_video(folder / "source.mp4", level_frames(30, CLIP_HEIGHT, CLIP_WIDTH))
    files = {
        "zero_byte": folder / "zero.mp4",
        "truncated": folder / "truncated.mp4",
        "not_video": folder / "text.mp4",
        "audio_only": folder / "audio.mp4",
        "too_short": folder / "short.mp4",
    }
    files["zero_byte"].write_bytes(b"")
    data = good.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["not_video"].write_text("no video here\n" * 50)
    with av.open(str(files["audio_only"]), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = np.zeros((1, 16000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.time_base = Fraction(1, 16000)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    write_video(files["too_short"], level_frames(2, CLIP_HEIGHT, CLIP_WIDTH))
    good.unlink()
    return files


def test_missing_files_found_at_setup(video_folder: Path, tmp_path: Path) -> None:
    lines = "".join(f"{video_folder / rel} {label}\n" for rel, label in VIDEO_FOLDER_CLIPS)
    gone = [tmp_path / f"gone{i}.mp4" for i in range(3)]
    (tmp_path / "train.csv").write_text(lines + "".join(f"{p} 0\n" for p in gone))
    with pytest.warns(RuntimeWarning, match=r"3 of 9 videos .* missing on disk") as info:
        dm = _dm(tmp_path, val_list=None)
        dm.setup("fit")
    assert all(str(p) in str(info[0].message) for p in gone)
    assert len(dm.train_records) == 6
    strict = _dm(tmp_path, val_list=None, on_error="raise")
    with pytest.raises(FileNotFoundError, match=re.escape(str(gone[0]))):
        strict.setup("fit")


def _broken_set(video_folder: Path, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    broken = write_broken_files(tmp_path / "broken")
    good = [video_folder / rel for rel, _ in VIDEO_FOLDER_CLIPS[:5]]
    # good and broken interleaved, two broken in a row once; 10 entries (batch 2: all used)
    order = [good[0], broken["zero_byte"], good[1], broken["truncated"], broken["not_video"]]
    order += [good[2], broken["audio_only"], good[3], broken["too_short"], good[4]]
    (tmp_path / "train.csv").write_text("".join(f"{p} {i % 3}\n" for i, p in enumerate(order)))
    return tmp_path, broken


def test_each_broken_kind_is_replaced_by_the_next_video(video_folder: Path, tmp_path: Path):
    root, broken = _broken_set(video_folder, tmp_path)
    dm = _dm(root, val_list=None, num_frames=4)
    dm.setup("fit")
    ds = dm.train_set
    with pytest.warns(RuntimeWarning) as caught:
        items = [ds[i] for i in range(len(ds))]
    messages = " ".join(str(w.message) for w in caught)
    for path in broken.values():
        assert str(path) in messages
    assert "too short: 2 frames" in messages
    returned = [int(item["index"]) for item in items]
    assert returned == [0, 2, 2, 5, 5, 5, 7, 7, 9, 9]
    assert items[3]["broken"].tolist()[:3] == [3, 4, -1]
    strict = VideoClipDataset(
        ds.records,
        num_frames=4,
        sampling_rate=2,
        transform=EvalTransform(32),
        train=False,
        on_error="raise",
    )
    with pytest.raises(Exception, match=re.escape(str(broken["zero_byte"]))):
        strict[1]


def test_training_run_over_broken_files_counts_them(video_folder: Path, tmp_path: Path):
    from videomae.models.masking import TubeMasking
    from videomae.models.pretrain import VideoMAEPretrain
    from videomae.modules.pretrain import PretrainModule

    root, broken = _broken_set(video_folder, tmp_path)
    dm = _dm(root, val_list=None, num_workers=1, img_size=32, num_frames=4)
    net = VideoMAEPretrain(
        img_size=32,
        num_frames=4,
        patch_size=16,
        tubelet_size=2,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    module = PretrainModule(
        net,
        TubeMasking(0.75),
        batch_size=2,
        optim={"base_lr": 1e-3, "warmup_epochs": 0, "min_lr": 0.0, "weight_decay": 0.05},
    )
    counter = BrokenVideoLogger()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[counter],
        default_root_dir=tmp_path / "run",
    )
    trainer.fit(module, datamodule=dm)  # (the skip warnings are raised in the worker process)
    assert trainer.global_step == 10  # 2 epochs x 5 batches: the run went to the end
    assert trainer.callback_metrics["data/broken_train"].item() == len(broken)
    assert counter.totals["train"] == 2 * len(broken)
    lines = (tmp_path / "run" / "broken_videos.txt").read_text().splitlines()
    assert sorted(lines) == sorted(
        f"{epoch}\ttrain\t{p}" for epoch in (0, 1) for p in broken.values()
    )


def test_random_clip_data_module_serves_fixed_shape_batches() -> None:
    from videomae.data.random_clips import RandomClipDataModule

    dm = RandomClipDataModule(
        num_frames=4,
        img_size=16,
        batch_size=3,
        num_classes=5,
        train_batches=7,
        val_batches=2,
        distinct_batches=2,
    )
    train = list(dm.train_dataloader())
    assert len(train) == 7 and len(list(dm.val_dataloader())) == 2
    assert train[0]["video"].shape == (3, 3, 4, 16, 16) and train[0]["video"].dtype == torch.uint8
    assert train[0]["label"].max() < 5
    assert torch.equal(train[0]["video"], train[2]["video"])  # two distinct batches, cycled
    assert not torch.equal(train[0]["video"], train[1]["video"])
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        RandomClipDataModule(batch_size=0)


def test_labeled_per_class_trains_on_a_subset_and_keeps_the_validation_list(
    video_folder: Path,
) -> None:
    dm = _dm(video_folder, mode="finetune", labeled_per_class=1, subset_seed=3)
    dm.setup("fit")
    labels = sorted(r.label for r in dm.train_records)
    assert labels == [0, 1, 2]  # one video of each class
    assert len(dm.val_records) == len(VIDEO_FOLDER_CLIPS)  # validation untouched
    again = _dm(video_folder, mode="finetune", labeled_per_class=1, subset_seed=3)
    again.setup("fit")
    assert [r.path for r in again.train_records] == [r.path for r in dm.train_records]
    with pytest.raises(ValueError, match=r"data\.labeled_per_class=3: .*class 0 has 2"):
        too_many = _dm(video_folder, labeled_per_class=3)
        too_many.setup("fit")
    with pytest.raises(ValueError, match=r"data\.labeled_per_class must be >= 1"):
        _dm(video_folder, labeled_per_class=0)
