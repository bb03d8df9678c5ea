"""``videomae-prepare``: list files from each data set's official annotations.

Every test writes tiny fixture annotations and zero-byte placeholder videos (prepare checks that
files exist, it does not decode them), with one video named by the annotations but absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videomae.cli.prepare import (
    k400_file_stem,
    main,
    prepare_folders,
    ssv2_class_name,
)
from videomae.data.lists import read_list


def touch(path: Path) -> Path:
    """An empty placeholder file (and its folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def lines(path: Path) -> list[str]:
    """The lines of a written list file."""
    return path.read_text(encoding="utf-8").splitlines()


# ----------------------------------------------------------------------------------- ssv2
def make_ssv2(root: Path) -> None:
    labels = {"Putting something on something": "1", "Holding something": "0"}
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels))
    train = [
        {"id": "11", "label": "putting a cup on a box", "template": "Putting [something] on "
         "[something]", "placeholders": ["a cup", "a box"]},
        {"id": "12", "label": "holding a pen", "template": "Holding [something]",
         "placeholders": ["a pen"]},
        {"id": "13", "label": "holding a cat", "template": "Holding [something]",
         "placeholders": ["a cat"]},
    ]  # fmt: skip
    val = [{"id": "21", "label": "holding x", "template": "Holding [something]"}]
    (root / "something-something-v2-train.json").write_text(json.dumps(train))
    (root / "something-something-v2-validation.json").write_text(json.dumps(val))
    touch(root / "videos" / "a" / "11.webm")
    touch(root / "videos" / "a" / "11.mp4")  # same id, .webm preferred
    touch(root / "videos" / "12.mp4")  # converted to mp4: accepted
    # 13 is missing
    touch(root / "21.webm")
    touch(root / "videos" / "99.webm")  # not named by the annotations: ignored


def test_ssv2_lists_labels_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_ssv2(tmp_path)
    assert main(["ssv2", "--root", str(tmp_path)]) == 0
    assert lines(tmp_path / "train.csv") == ["videos/a/11.webm 1", "videos/12.mp4 0"]
    assert lines(tmp_path / "val.csv") == ["21.webm 0"]
    assert lines(tmp_path / "test.csv") == ["21.webm 0"]
    assert lines(tmp_path / "labels.txt") == ["Holding something", "Putting something on something"]
    out, err = capsys.readouterr()
    assert "1 video(s) named by the annotations are missing" in err
    assert "(train 1)" in err and "  13.webm" in err
    assert "ssv2: train 2, val 1, test 1 videos; 2 classes" in out


def test_ssv2_template_brackets_removed() -> None:
    assert ssv2_class_name("Putting [something] on [something]") == "Putting something on something"
    assert (
        ssv2_class_name("Pretending to put [something] into [something]")
        == "Pretending to put something into something"
    )


def test_ssv2_strict_and_bad_annotations(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_ssv2(tmp_path)
    assert main(["ssv2", "--root", str(tmp_path), "--strict"]) == 1
    assert not (tmp_path / "train.csv").exists()
    assert "13.webm" in capsys.readouterr().err

    bad = [{"id": "11", "template": "Holding [something] up"}]
    (tmp_path / "something-something-v2-train.json").write_text(json.dumps(bad))
    assert main(["ssv2", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "something-something-v2-train.json: entry 1 (id 11)" in err
    assert "'Holding something up'" in err

    (tmp_path / "something-something-v2-labels.json").unlink()
    assert main(["ssv2", "--root", str(tmp_path)]) == 2
    assert "annotation file not found" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- k400
K400_HEADER = "label,youtube_id,time_start,time_end,split,is_cc\n"


def make_k400(root: Path, ann: Path, test_labels: bool) -> None:
    ann.mkdir(parents=True)
    (ann / "train.csv").write_text(
        K400_HEADER
        + "zumba,abc,10,20,train,0\n"
        + '"air drumming",-x_Y9,1,11,train,0\n'
        + "zumba,missing1,0,10,train,0\n"
    )
    (ann / "validate.csv").write_text(K400_HEADER + "air drumming,vvv,123456,123466,val,0\n")
    if test_labels:
        (ann / "test.csv").write_text(K400_HEADER + "zumba,ttt,5,15,test,0\n")
    else:
        (ann / "test.csv").write_text("youtube_id,time_start,time_end,split\nttt,5,15,test\n")
    touch(root / "train" / "zumba" / "abc_000010_000020.mp4")  # split/label/file
    touch(root / "train" / "-x_Y9_000001_000011.mkv")  # split/file, other container
    touch(root / "vvv_123456_123466.mp4")  # flat
    touch(root / "test" / "ttt_000005_000015.webm")


def test_k400_file_name_format() -> None:
    assert k400_file_stem("abc", 10, 20) == "abc_000010_000020"
    assert k400_file_stem("-x_Y9", 1, 123466) == "-x_Y9_000001_123466"


def test_k400_lists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, ann = tmp_path / "k400", tmp_path / "annotations"
    make_k400(root, ann, test_labels=True)
    assert main(["k400", "--root", str(root), "--annotations", str(ann)]) == 0
    # classes sorted: 'air drumming' 0, 'zumba' 1
    assert lines(root / "labels.txt") == ["air drumming", "zumba"]
    assert lines(root / "train.csv") == [
        "train/zumba/abc_000010_000020.mp4 1",
        "train/-x_Y9_000001_000011.mkv 0",
    ]
    assert lines(root / "val.csv") == ["vvv_123456_123466.mp4 0"]
    assert lines(root / "test.csv") == ["test/ttt_000005_000015.webm 1"]
    out, err = capsys.readouterr()
    assert "1 video(s)" in err and "missing1_000000_000010.mp4" in err
    assert "k400: train 2, val 1, test 1 videos; 2 classes" in out


def test_k400_unlabelled_test_uses_validate(tmp_path: Path, capsys) -> None:
    root, ann = tmp_path / "k400", tmp_path / "annotations"
    make_k400(root, ann, test_labels=False)
    (ann / "validate.csv").rename(ann / "val.csv")  # the other accepted name
    out_dir = tmp_path / "lists"
    args = ["k400", "--root", str(root), "--annotations", str(ann), "--out", str(out_dir)]
    assert main(args) == 0
    assert lines(out_dir / "test.csv") == lines(out_dir / "val.csv") == ["vvv_123456_123466.mp4 0"]
    assert "test.csv = validate" in capsys.readouterr().out
    assert not (root / "train.csv").exists()


def test_k400_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, ann = tmp_path / "k400", tmp_path / "annotations"
    make_k400(root, ann, test_labels=True)
    # the lists would overwrite the official annotations of the same names
    assert main(["k400", "--root", str(ann)]) == 2
    assert "would overwrite the annotation file" in capsys.readouterr().err
    assert (ann / "train.csv").read_text().startswith(K400_HEADER)

    (ann / "validate.csv").write_text(K400_HEADER + "zumba,vvv,1.5,11,val,0\n")
    assert main(["k400", "--root", str(root), "--annotations", str(ann)]) == 2
    assert f"{ann / 'validate.csv'}:2: time_start '1.5'" in capsys.readouterr().err

    (ann / "validate.csv").write_text(K400_HEADER + "yoga,vvv,1,11,val,0\n")
    assert main(["k400", "--root", str(root), "--annotations", str(ann)]) == 2
    assert "validate.csv:2: label 'yoga' is not a class" in capsys.readouterr().err

    (ann / "validate.csv").write_text("youtube_id,time_start\nvvv,1\n")
    assert main(["k400", "--root", str(root), "--annotations", str(ann)]) == 2
    assert "validate.csv:1: header" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- ucf101
def make_ucf101(root: Path) -> Path:
    ann = root / "ucfTrainTestlist"  # found one folder below --annotations
    ann.mkdir(parents=True)
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\r\n2 Archery\r\n")
    (ann / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "Archery/v_Archery_g08_c01.avi 2\r\n"
        "Archery/v_Archery_g09_c01.avi 2\r\n"
    )
    (ann / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nArchery/v_Archery_g01_c01.avi\r\n"
    )
    (ann / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 2\n")
    (ann / "testlist02.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n")
    for rel in (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "Archery/v_Archery_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "Archery/v_Archery_g01_c01.avi",
    ):  # v_Archery_g09_c01 is missing
        touch(root / rel)
    return ann


def test_ucf101_lists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_ucf101(tmp_path)
    assert main(["ucf101", "--root", str(tmp_path)]) == 0
    assert lines(tmp_path / "labels.txt") == ["ApplyEyeMakeup", "Archery"]
    assert lines(tmp_path / "train.csv") == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0",
        "Archery/v_Archery_g08_c01.avi 1",
    ]
    expected_test = [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 0",
        "Archery/v_Archery_g01_c01.avi 1",
    ]
    assert lines(tmp_path / "test.csv") == expected_test
    assert lines(tmp_path / "val.csv") == expected_test
    err = capsys.readouterr().err
    assert "1 video(s)" in err and "Archery/v_Archery_g09_c01.avi" in err

    assert main(["ucf101", "--root", str(tmp_path), "--split", "2", "--strict"]) == 0
    assert lines(tmp_path / "train.csv") == ["Archery/v_Archery_g01_c01.avi 1"]
    assert lines(tmp_path / "val.csv") == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 0"]

    assert main(["ucf101", "--root", str(tmp_path), "--strict"]) == 1


def test_ucf101_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ann = make_ucf101(tmp_path)
    (ann / "trainlist01.txt").write_text(
        "Archery/v_Archery_g08_c01.avi 2\nArchery/v_Archery_g09_c01.avi 1\n"
    )
    assert main(["ucf101", "--root", str(tmp_path)]) == 2
    assert f"{ann / 'trainlist01.txt'}:2: label 1 does not match" in capsys.readouterr().err
    (ann / "trainlist01.txt").write_text("Bowling/v_Bowling_g01_c01.avi 3\n")
    assert main(["ucf101", "--root", str(tmp_path)]) == 2
    assert "trainlist01.txt:1: class folder 'Bowling'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- hmdb51
def test_hmdb51_lists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ann = tmp_path / "testTrainMulti_7030_splits"
    ann.mkdir()
    (ann / "cartwheel_test_split1.txt").write_text("c1.avi 1 \nc2.avi 2 \nc3.avi 0 \n")
    (ann / "brush_hair_test_split1.txt").write_text("b1.avi 2 \nb2.avi 1 \nb3.avi 1 \n")
    (ann / "brush_hair_test_split2.txt").write_text("b1.avi 1 \n")
    for rel in ("cartwheel/c1.avi", "cartwheel/c2.avi", "brush_hair/b1.avi", "brush_hair/b2.avi"):
        touch(tmp_path / rel)  # brush_hair/b3.avi is missing; c3 is unused
    assert main(["hmdb51", "--root", str(tmp_path)]) == 0
    assert lines(tmp_path / "labels.txt") == ["brush_hair", "cartwheel"]
    assert lines(tmp_path / "train.csv") == ["brush_hair/b2.avi 0", "cartwheel/c1.avi 1"]
    assert lines(tmp_path / "val.csv") == ["brush_hair/b1.avi 0", "cartwheel/c2.avi 1"]
    assert lines(tmp_path / "test.csv") == lines(tmp_path / "val.csv")
    err = capsys.readouterr().err
    assert "1 video(s)" in err and "brush_hair/b3.avi" in err and "c3.avi" not in err
    assert main(["hmdb51", "--root", str(tmp_path), "--strict"]) == 1

    (ann / "cartwheel_test_split1.txt").write_text("c1.avi 1\nc2.avi 3\n")
    assert main(["hmdb51", "--root", str(tmp_path)]) == 2
    assert "cartwheel_test_split1.txt:2: expected 'video.avi 0|1|2'" in capsys.readouterr().err
    assert main(["hmdb51", "--root", str(tmp_path), "--split", "3"]) == 2
    assert "no HMDB51 split files '<class>_test_split3.txt'" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- folders
def test_folders_with_split_folders(tmp_path: Path) -> None:
    touch(tmp_path / "train" / "dog" / "d1.mp4")
    touch(tmp_path / "train" / "dog" / "d10.mp4")
    touch(tmp_path / "train" / "dog" / "d2.mp4")  # natural order: d1, d2, d10
    touch(tmp_path / "train" / "dog" / ".d3.mp4")  # hidden: skipped
    touch(tmp_path / "train" / "cat" / "c1.webm")
    touch(tmp_path / "train" / "cat" / "notes.txt")  # not a video
    for i in range(3):  # a frame folder is one video
        touch(tmp_path / "train" / "cat" / "c2" / f"img_{i:05d}.jpg")
    touch(tmp_path / "val" / "dog" / "sub" / "d2.MKV")  # nested, upper-case suffix
    touch(tmp_path / "val" / "bird" / "b1.avi")  # a class only in val
    assert main(["folders", "--root", str(tmp_path)]) == 0
    assert lines(tmp_path / "labels.txt") == ["bird", "cat", "dog"]
    assert lines(tmp_path / "train.csv") == [
        "train/cat/c1.webm 1",
        "train/cat/c2 1",
        "train/dog/d1.mp4 2",
        "train/dog/d2.mp4 2",
        "train/dog/d10.mp4 2",
    ]
    assert lines(tmp_path / "val.csv") == ["val/bird/b1.avi 0", "val/dog/sub/d2.MKV 2"]
    assert not (tmp_path / "test.csv").exists()


def test_folders_deterministic_split(tmp_path: Path) -> None:
    names = {"a": 10, "b": 4, "c": 1}
    for cls, n in names.items():
        for i in range(n):
            touch(tmp_path / cls / f"v{i}.mp4")
    touch(tmp_path / "lists" / "train.csv")  # a folder without videos is not a class
    first = prepare_folders(tmp_path, val_fraction=0.2, seed=3)
    assert first.classes == ["a", "b", "c"]
    assert "left out 1 folder(s) without videos: lists" in first.notes
    again = prepare_folders(tmp_path, val_fraction=0.2, seed=3)
    other = prepare_folders(tmp_path, val_fraction=0.2, seed=4)
    assert first.splits == again.splits
    assert first.splits != other.splits
    val_per_class = [sum(1 for _, y in first.splits["val"] if y == k) for k in range(3)]
    # a: round(10 * 0.2) = 2; b: round(0.8) = 1; c: a single video stays in train
    assert val_per_class == [2, 1, 0]
    every = sorted(first.splits["train"] + first.splits["val"])
    assert every == sorted(
        (f"{c}/v{i}.mp4", k) for k, c in enumerate(names) for i in range(names[c])
    )

    assert main(["folders", "--root", str(tmp_path), "--val-fraction", "0.5", "--seed", "3"]) == 0
    assert len(lines(tmp_path / "val.csv")) == 5 + 2 + 0
    assert main(["folders", "--root", str(tmp_path), "--val-fraction", "1.5"]) == 2


# ----------------------------------------------------------------------------------- read back
def test_written_list_reads_back(tmp_path: Path) -> None:
    touch(tmp_path / "train" / "air drumming" / "clip 1.mp4")  # spaces in the path
    touch(tmp_path / "train" / "zumba" / "z.mp4")
    touch(tmp_path / "val" / "zumba" / "z2.mp4")
    assert main(["folders", "--root", str(tmp_path), "--out", str(tmp_path / "lists")]) == 0
    records = read_list(tmp_path / "lists" / "train.csv", tmp_path)
    assert [(r.path, r.label) for r in records] == [
        (tmp_path / "train" / "air drumming" / "clip 1.mp4", 0),
        (tmp_path / "train" / "zumba" / "z.mp4", 1),
    ]
    assert all(r.path.is_file() for r in records)
