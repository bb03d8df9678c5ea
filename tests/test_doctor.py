"""Tests of ``videomae-doctor``: every broken kind named, exit codes, the clean list, JSON."""

from __future__ import annotations

import json
from itertools import zip_longest
from pathlib import Path

import pytest

from conftest import level_frames, write_video
from test_decoding import write_audio_only, write_frame_folder
from videomae.cli.doctor import main

GOOD = ["good/a.mp4", "good/b b.webm", "good/c.avi"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good clips (40 frames, 64x80, 25 fps; one frame folder) and one of each broken kind."""
    root = tmp_path_factory.mktemp("doctor")
    frames = level_frames(40, 64, 80)
    for rel in GOOD:
        write_video(root / rel, frames)
    write_frame_folder(root / "good" / "frames", 40, first=1)
    (root / "bad").mkdir()
    (root / "bad" / "empty.mp4").write_bytes(b"")
    (root / "bad" / "text.mp4").write_text("this is not a video\n" * 20)
    data = (root / GOOD[0]).read_bytes()
    (root / "bad" / "truncated.mp4").write_bytes(data[: len(data) // 2])
    write_audio_only(root / "bad" / "audio.mp4")
    write_video(root / "bad" / "short.mp4", level_frames(6, 64, 80))
    return root


BAD = {  # list entry -> what the doctor must say
    "bad/missing.mp4": "missing",
    "bad/empty.mp4": "empty (0 bytes)",
    "bad/truncated.mp4": "cannot open: truncated or corrupt MP4/QuickTime file",
    "bad/text.mp4": "cannot open: not a video file",
    "bad/audio.mp4": "no video stream",
    "bad/short.mp4": "too short: 6 frames, a 8x4 clip (spans 29) needs 8",
}


def _lines() -> list[str]:
    """The list: bad and good entries interleaved (good ones: 3 videos and a frame folder)."""
    good = [f"{rel} {i}" for i, rel in enumerate(GOOD)] + ["good/frames 1"]
    bad = [f"{rel} 0" for rel in BAD]
    return [x for pair in zip_longest(bad, good) for x in pair if x is not None]


def test_doctor_names_exactly_the_broken_files(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    lines = _lines()
    list_file = tmp_path / "train.csv"
    list_file.write_text("\n".join(lines) + "\n")
    clean = tmp_path / "out" / "clean.csv"
    args = [str(list_file), "--root", str(dataset), "--num-frames", "8", "--sampling-rate", "4"]
    status = main([*args, "--workers", "2", "--decode", "--write-clean", str(clean)])
    out = capsys.readouterr().out
    assert status == 1
    bad_lines = [line for line in out.splitlines() if line.startswith("BAD ")]
    assert len(bad_lines) == len(BAD)
    for rel, phrase in BAD.items():
        (line,) = [x for x in bad_lines if x.startswith(f"BAD {dataset / rel} ")]
        assert phrase in line, line
    assert "checked 10 entries: 4 ok, 6 bad" in out
    assert "resolutions: 80x64 (5)" in out  # 4 good + the short one
    assert "fps: min 25.00 / median 25.00 / max 25.00" in out
    assert "length (frames): min 6 / median 40 / max 40" in out
    # the clean list: the good lines, verbatim, in order
    good_lines = [x for x in lines if not any(x.startswith(rel) for rel in BAD)]
    assert clean.read_text().splitlines() == good_lines
    assert main([str(clean), "--root", str(dataset), "--num-frames", "8", "--workers", "1"]) == 0


def test_doctor_all_good_json_and_segments(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    list_file = tmp_path / "v2.txt"  # a VideoMAE V2 list: videos "0 -1", a frame folder "1 40"
    list_file.write_text("good/a.mp4 0 -1 -1\ngood/c.avi 0 -1 -1\ngood/frames 1 40 -1\n")
    common = ["--root", str(dataset), "--sampling", "segment", "--workers", "1"]
    status = main([str(list_file), *common, "--json", "--decode"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["list_format"] == "videomae_v2"
    summary = report["summary"]
    assert (summary["entries"], summary["ok"], summary["bad"]) == (3, 3, 0)
    assert summary["frames"] == {"min": 40.0, "median": 40.0, "max": 40.0}
    assert summary["seconds"] == {"min": 1.6, "median": 1.6, "max": 1.6}  # frame folder: no fps
    assert report["bad"] == []
    # a 16x4 dense clip needs 16 frames by default (the training rule), 61 with --min-frames
    assert main([str(list_file), "--root", str(dataset), "--workers", "1"]) == 0
    capsys.readouterr()
    strict = [str(list_file), "--root", str(dataset), "--workers", "1", "--min-frames", "61"]
    assert main(strict) == 1
    assert "a 16x4 clip (spans 61) needs 61" in capsys.readouterr().out


def test_doctor_folder_tree_clean_list(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    tree = tmp_path / "tree"
    write_video(tree / "walk" / "ok.mp4", level_frames(40, 64, 80))
    (tree / "jump").mkdir()
    (tree / "jump" / "broken.mp4").write_text("not a video\n")
    clean = tmp_path / "clean.csv"
    common = ["--root", str(tree), "--num-frames", "8", "--workers", "1"]
    status = main([str(tree), *common, "--write-clean", str(clean)])
    assert status == 1
    assert clean.read_text() == "walk/ok.mp4 1\n"  # an official list of the good entries
    assert "BAD " + str(tree / "jump" / "broken.mp4") in capsys.readouterr().out


def test_doctor_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "nope.csv"), "--root", str(tmp_path)]) == 2
    assert "nope.csv" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a.mp4 x\n")
    assert main([str(bad), "--root", str(tmp_path)]) == 2
    assert "bad.csv:1" in capsys.readouterr().err
    assert main([str(bad)]) == 2  # --root is required
    assert main([str(bad), "--root", str(tmp_path), "--num-frames", "0"]) == 2
