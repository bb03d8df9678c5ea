"""Tests of the list readers: official, VideoMAE V2 and folder-tree formats, auto detection."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from videomae.data.lists import (
    VideoRecord,
    detect_list_format,
    folder_classes,
    missing_files,
    natural_key,
    per_class_subset,
    read_list,
)
from videomae.errors import ConfigError


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------ videomae


def test_videomae_format_spaces_commas_and_auto(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lines = ["a/b.mp4 3", "", "class name/with space.webm\t12", "c.avi,4", "d.mp4 , 5"]
    list_file = _write(tmp_path / "train.csv", lines)
    expected = [
        VideoRecord(root / "a" / "b.mp4", 3, 1),
        VideoRecord(root / "class name" / "with space.webm", 12, 3),
        VideoRecord(root / "c.avi", 4, 4),
        VideoRecord(root / "d.mp4", 5, 5),
    ]
    assert read_list(list_file, root, "videomae") == expected
    assert read_list(list_file, root) == expected  # auto -> videomae
    assert detect_list_format(list_file) == "videomae"
    assert all(r.start == 0 and r.total is None for r in expected)


def test_videomae_numeric_frame_folder_paths_stay_videomae(tmp_path: Path) -> None:
    # SSv2 frame folders are numbers: "74225 3" is still a path and a label (two integers)
    list_file = _write(tmp_path / "l.csv", ["74225 3", "1001 0"])
    assert detect_list_format(list_file) == "videomae"
    assert read_list(list_file, tmp_path) == [
        VideoRecord(tmp_path / "74225", 3, 1),
        VideoRecord(tmp_path / "1001", 0, 2),
    ]


def test_videomae_labels_checked_against_classes(tmp_path: Path) -> None:
    list_file = _write(tmp_path / "l.csv", ["a.mp4 0", "b.mp4 2"])
    assert len(read_list(list_file, tmp_path, classes=["x", "y", "z"])) == 2
    with pytest.raises(ValueError, match=r"l\.csv:2: label 2 is not below the 2 classes"):
        read_list(list_file, tmp_path, classes=["x", "y"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("only_a_path.mp4", "no label"),
        ("a.mp4 seven", "not an integer"),
        ("a.mp4 -1", "negative"),
    ],
)
def test_videomae_bad_line_named(tmp_path: Path, line: str, reason: str) -> None:
    list_file = _write(tmp_path / "bad.csv", ["good.mp4 0", line])
    with pytest.raises(ValueError, match=reason) as info:
        read_list(list_file, tmp_path, "videomae")
    assert f"{list_file}:2" in str(info.value) and line in str(info.value)


# --------------------------------------------------------------------------------- videomae_v2


def test_videomae_v2_frames_and_videos(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lines = [
        "k710/frames/abseiling/0347 1 300 -1",  # frame folder, 4 fields
        "k710/videos/air drumming/x.mp4 0 -1 -1",  # video file, length from the file
        "74225 1 37 5",  # numeric SSv2 folder with a label
    ]
    list_file = _write(tmp_path / "v2.txt", lines)
    expected = [
        VideoRecord(root / "k710/frames/abseiling/0347", -1, 1, start=1, total=300),
        VideoRecord(root / "k710/videos/air drumming/x.mp4", -1, 2, start=0, total=None),
        VideoRecord(root / "74225", 5, 3, start=1, total=37),
    ]
    assert detect_list_format(list_file) == "videomae_v2"
    assert read_list(list_file, root) == expected
    assert read_list(list_file, root, "videomae_v2") == expected


def test_videomae_v2_three_fields_need_the_explicit_format(tmp_path: Path) -> None:
    list_file = _write(tmp_path / "v2.txt", ["a/frames 1 48", "b.mp4 0 -1"])
    assert read_list(list_file, tmp_path, "videomae_v2") == [
        VideoRecord(tmp_path / "a" / "frames", -1, 1, start=1, total=48),
        VideoRecord(tmp_path / "b.mp4", -1, 2, start=0, total=None),
    ]
    # auto sees only two integers at the end ("path label" whose path ends in a number)
    assert detect_list_format(list_file) == "videomae"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("a 1 two", "expected 'path start total"),
        ("a -2 30 -1", "start frame -2 is negative"),
        ("a 3 -1 -1", "total -1 \\(a video file\\) needs start 0"),
        ("a 1 0 -1", "total 0 must be >= 1"),
    ],
)
def test_videomae_v2_bad_line_named(tmp_path: Path, line: str, reason: str) -> None:
    list_file = _write(tmp_path / "v2.txt", ["ok 1 10 -1", line])
    with pytest.raises(ValueError, match=reason) as info:
        read_list(list_file, tmp_path, "videomae_v2")
    assert f"{list_file}:2" in str(info.value) and line in str(info.value)


# ------------------------------------------------------------------------------------- folders


def _tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for rel in ["walk/clip10.mp4", "walk/clip2.webm", "jump/a.avi", "jump/notes.txt"]:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"x")
    (tree / "jump" / "frames_b").mkdir()
    (tree / "jump" / "frames_b" / "img_00001.jpg").write_bytes(b"x")
    (tree / ".hidden").mkdir()
    (tree / "walk" / ".DS_Store").write_bytes(b"x")
    return tree


def test_folders_tree_videos_and_frame_folders(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    assert folder_classes(tree) == ["jump", "walk"]
    expected = [
        VideoRecord(tree / "jump" / "a.avi", 0, 1),
        VideoRecord(tree / "jump" / "frames_b", 0, 2),
        VideoRecord(tree / "walk" / "clip2.webm", 1, 3),  # natural order: 2 before 10
        VideoRecord(tree / "walk" / "clip10.mp4", 1, 4),
    ]
    assert read_list(tree, tmp_path / "unused", "folders") == expected
    assert read_list(tree, tmp_path) == expected  # auto: a directory
    assert detect_list_format(tree) == "folders"


def test_folders_tree_with_given_classes(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    records = read_list(tree, tmp_path, "folders", classes=["sit", "walk", "jump"])
    assert [(r.path.name, r.label) for r in records] == [
        ("a.avi", 2),
        ("frames_b", 2),
        ("clip2.webm", 1),
        ("clip10.mp4", 1),
    ]
    with pytest.raises(ValueError, match=r"class folders \['jump'\] of .*tree are not among"):
        read_list(tree, tmp_path, "folders", classes=["walk"])


def test_folder_classes_errors_name_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=f"{empty} has no class folders"):
        folder_classes(empty)
    with pytest.raises(FileNotFoundError, match="nope"):
        folder_classes(tmp_path / "nope")


# --------------------------------------------------------------------------------- and the rest


def test_unknown_format_and_missing_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'csv'.*'auto', 'videomae', 'videomae_v2', 'folders'"):
        read_list(tmp_path / "l.csv", tmp_path, "csv")
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_list(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        read_list(tmp_path, tmp_path, "videomae")


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["img_10.jpg", "img_2.jpg", "img_1.jpg", "a.jpg"]
    assert sorted(names, key=natural_key) == ["a.jpg", "img_1.jpg", "img_2.jpg", "img_10.jpg"]


def test_missing_files_finds_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    records = [
        VideoRecord(tmp_path / "v.mp4", 0, 1),
        VideoRecord(tmp_path / "gone.mp4", 0, 2),
        VideoRecord(tmp_path / "frames", 0, 3),
        VideoRecord(tmp_path / "gone_frames", 0, 4),
    ]
    assert missing_files(records) == [records[1], records[3]]
    many = records * 1500  # the thread-pool path
    assert missing_files(many, workers=3) == [records[1], records[3]] * 1500


def test_large_list_reads_quickly(tmp_path: Path) -> None:
    n = 50_000
    list_file = tmp_path / "big.csv"
    list_file.write_text(
        "".join(f"class {i % 400}/video_{i:07d}.mp4 {i % 400}\n" for i in range(n))
    )
    began = time.perf_counter()
    records = read_list(list_file, tmp_path)
    gone = missing_files(records)
    elapsed = time.perf_counter() - began
    assert len(records) == n and len(gone) == n
    assert records[-1] == VideoRecord(tmp_path / "class 399" / "video_0049999.mp4", 399, n)
    assert missing_files(records, workers=4) == gone  # the thread-pool path, same answer
    assert elapsed < 10  # measured 1.5 s on the busy 2-core machine (pathlib dominates)


# ---------------------------------------------------------------------------- labeled subset


def test_per_class_subset_draws_k_of_each_class_reproducibly(tmp_path: Path) -> None:
    records = [VideoRecord(tmp_path / f"v{i}.mp4", i % 3, i + 1) for i in range(30)]
    subset = per_class_subset(records, 4, seed=7)
    assert sorted(Counter(r.label for r in subset).values()) == [4, 4, 4]
    assert [r.line for r in subset] == sorted(r.line for r in subset)  # list order kept
    assert per_class_subset(records, 4, seed=7) == subset  # same seed, same videos
    assert per_class_subset(records, 4, seed=8) != subset
    assert per_class_subset(records, 10, seed=7) == records  # every video of every class
    # a larger subset of the same seed is not required to contain a smaller one; each is a draw
    with pytest.raises(ConfigError, match=r"labeled_per_class=11: .*class 0 has 10"):
        per_class_subset(records, 11, seed=0)
    unlabeled = [VideoRecord(tmp_path / "u.mp4", -1, 3)]
    with pytest.raises(ConfigError, match=r"needs labels; line 3"):
        per_class_subset(unlabeled, 1, seed=0)
