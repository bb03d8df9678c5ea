"""Tests of the synthetic motion-classification video set (videomae.data.synthetic)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from videomae.data import synthetic
from videomae.data.synthetic import (
    CLASS_NAMES,
    DRIFT_CLASS_NAMES,
    SyntheticSpec,
    ensure_synthetic,
    generate,
    main,
    render_video,
)

decord = pytest.importorskip("decord")

SMALL = SyntheticSpec(
    train_per_class=2, val_per_class=1, num_frames=24, height=64, width=64, fps=12, seed=3
)
LIST_LINE = re.compile(r"^videos/(train|val)/\d{6}\.(mp4|webm) \d+$")


def _read_list(path: Path) -> list[tuple[str, int]]:
    items = []
    for line in path.read_text().splitlines():
        assert LIST_LINE.match(line), line
        rel, label = line.split(" ")
        items.append((rel, int(label)))
    return items


def _decode_all(root: Path) -> dict[str, np.ndarray]:
    frames = {}
    for split in ("train", "val"):
        for rel, _ in _read_list(root / f"{split}.csv"):
            reader = decord.VideoReader(str(root / rel))
            frames[rel] = reader.get_batch(list(range(len(reader)))).asnumpy()
    return frames


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("synthetic") / "set"
    paths = generate(root, SMALL, progress=False, workers=2)
    return root, paths


# ------------------------------------------------------------------------------------------
# Spec validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 0),
        ("num_classes", len(CLASS_NAMES) + 1),
        ("train_per_class", 0),
        ("val_per_class", -1),
        ("num_frames", 7),
        ("height", 63),
        ("width", 0),
        ("height", 16),
        ("fps", 0),
        ("seed", -1),
        ("num_frames", 8.5),
        ("motion_speed", 0),
        ("motion_speed", float("inf")),
        ("background_pan", -0.5),
        ("max_distractors", 4),
        ("max_distractors", -1),
        ("motion_speed", "fast"),
    ],
)
def test_bad_spec_values_raise_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b.*{re.escape(str(value))}"):
        SyntheticSpec(**{field: value})


def test_bad_scene_and_objects_only_values_in_the_drift_scene_raise() -> None:
    for bad in ("pan", None, ["drift"], 1):
        with pytest.raises(ValueError, match=r"scene must be one of objects, drift, got"):
            SyntheticSpec(scene=bad)
    assert SyntheticSpec(scene=np.str_("drift")).to_dict()["scene"] == "drift"
    with pytest.raises(ValueError, match=r"motion_speed makes the 'drift' scene.*13\.0 >= 12\.8"):
        SyntheticSpec(scene="drift", motion_speed=13.0)
    SyntheticSpec(scene="objects", motion_speed=13.0)  # the objects scene has no such limit
    with pytest.raises(ValueError, match=r"background_pan applies to the 'objects' scene.*0\.0"):
        SyntheticSpec(scene="drift", background_pan=0.0)
    assert SyntheticSpec(scene="drift").class_names == DRIFT_CLASS_NAMES
    assert SyntheticSpec(scene="drift", num_classes=3).class_names == DRIFT_CLASS_NAMES[:3]
    assert SyntheticSpec().to_dict()["scene"] == "objects"


def test_default_spec() -> None:
    spec = SyntheticSpec()
    assert spec.num_classes == len(CLASS_NAMES) == 8
    assert (spec.train_per_class, spec.val_per_class) == (40, 10)
    assert (spec.num_frames, spec.height, spec.width, spec.fps, spec.seed) == (48, 128, 128, 12, 0)


# ------------------------------------------------------------------------------------------
# Files on disk
# ------------------------------------------------------------------------------------------


def test_generate_writes_lists_labels_spec_and_decodable_videos(
    small_set: tuple[Path, dict[str, Path]],
) -> None:
    root, paths = small_set
    assert paths == {
        "train": root / "train.csv",
        "val": root / "val.csv",
        "labels": root / "labels.txt",
    }
    assert paths["labels"].read_text().splitlines() == list(CLASS_NAMES)
    stored = json.loads((root / "spec.json").read_text())
    assert stored == SMALL.to_dict()
    assert {k: stored[k] for k in ("train_per_class", "num_frames", "seed")} == {
        "train_per_class": 2,
        "num_frames": 24,
        "seed": 3,
    }
    # No temporary siblings are left behind.
    assert [p.name for p in root.parent.iterdir()] == [root.name]

    for split, per_class in (("train", SMALL.train_per_class), ("val", SMALL.val_per_class)):
        items = _read_list(paths[split])
        assert len(items) == per_class * SMALL.num_classes
        labels = [label for _, label in items]
        assert sorted(set(labels)) == list(range(SMALL.num_classes))
        assert all(labels.count(c) == per_class for c in range(SMALL.num_classes))
        assert all(rel.startswith(f"videos/{split}/") for rel, _ in items)
        listed = {rel for rel, _ in items}
        on_disk = {p.relative_to(root).as_posix() for p in (root / "videos" / split).iterdir()}
        assert listed == on_disk

    train_items = _read_list(paths["train"])
    suffixes = {Path(rel).suffix for rel, _ in train_items}
    assert suffixes == {".mp4", ".webm"}
    # Each class has both containers: the container says nothing about the label.
    for c in range(SMALL.num_classes):
        assert {Path(rel).suffix for rel, label in train_items if label == c} == suffixes

    for rel, frames in _decode_all(root).items():
        assert frames.shape == (SMALL.num_frames, SMALL.height, SMALL.width, 3), rel
        assert frames.dtype == np.uint8
        assert frames.std() > 5.0, rel  # real content, not a blank video


def test_decoded_frames_match_rendered_frames(small_set: tuple[Path, dict[str, Path]]) -> None:
    root, paths = small_set
    for index, (rel, label) in enumerate(_read_list(paths["train"])[:4]):
        rendered = render_video(SMALL, label, synthetic._video_rng(SMALL.seed, "train", index))
        reader = decord.VideoReader(str(root / rel))
        decoded = reader.get_batch(list(range(len(reader)))).asnumpy()
        error = np.abs(decoded.astype(np.float32) - rendered.astype(np.float32)).mean()
        assert error < 12.0, (rel, error)
        # Random access (decord seeks to the nearest keyframe).
        frame = reader[SMALL.num_frames - 3].asnumpy()
        assert np.array_equal(frame, decoded[SMALL.num_frames - 3])


def test_generation_is_deterministic(
    small_set: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    root, _ = small_set
    again = tmp_path / "again"
    generate(again, SMALL, progress=False, workers=1)
    for name in ("train.csv", "val.csv", "labels.txt", "spec.json"):
        assert (root / name).read_bytes() == (again / name).read_bytes()
    first, second = _decode_all(root), _decode_all(again)
    assert first.keys() == second.keys()
    for rel in first:
        assert np.array_equal(first[rel], second[rel]), rel
        # threads=1 + bitexact: the encoded bytes are identical too.
        assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel

    other_seed = tmp_path / "other"
    spec = dataclasses.replace(SMALL, seed=SMALL.seed + 1)
    generate(other_seed, spec, progress=False)
    other = _decode_all(other_seed)
    assert other.keys() == first.keys()
    for rel in first:
        assert not np.array_equal(first[rel], other[rel]), rel


def test_encoded_bytes_do_not_depend_on_earlier_encodes(tmp_path: Path) -> None:
    """A video's bytes are a function of its frames alone: the same clip encoded again in the
    same process gives the same file (with x264's mbtree on, some repeats differed)."""
    frames = render_video(SMALL, 4, synthetic._video_rng(SMALL.seed, "train", 4))
    for ext in ("mp4", "webm"):
        digests = set()
        for i in range(8):
            path = tmp_path / f"{i}.{ext}"
            synthetic._encode(frames, path, SMALL.fps)
            digests.add(path.read_bytes())
        assert len(digests) == 1, ext


# ------------------------------------------------------------------------------------------
# ensure_synthetic and crash safety
# ------------------------------------------------------------------------------------------


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_ensure_synthetic_reuses_complete_set_and_regenerates_otherwise(tmp_path: Path) -> None:
    root = tmp_path / "set"
    spec = SyntheticSpec(
        num_classes=3, train_per_class=1, val_per_class=1, num_frames=8, height=32, width=32
    )
    paths = ensure_synthetic(root, spec, progress=False)
    assert paths["train"].is_file()
    before = _mtimes(root)

    # Complete and same spec: nothing is touched.
    assert ensure_synthetic(root, spec, progress=False) == paths
    assert _mtimes(root) == before

    # Interrupted generation (no spec.json marker): regenerated.
    (root / "spec.json").unlink()
    ensure_synthetic(root, spec, progress=False)
    assert json.loads((root / "spec.json").read_text()) == spec.to_dict()
    after = _mtimes(root)
    assert after.keys() == before.keys()
    assert after["videos/train/000000.mp4"] != before["videos/train/000000.mp4"]

    # Another spec: regenerated with the new parameters.
    other = dataclasses.replace(spec, num_classes=2, seed=5)
    ensure_synthetic(root, other, progress=False)
    assert json.loads((root / "spec.json").read_text()) == other.to_dict()
    assert (root / "labels.txt").read_text().splitlines() == list(CLASS_NAMES[:2])
    assert len(_read_list(root / "train.csv")) == 2
    assert not (root / "videos/train/000002.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_interrupted_generation_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "set"
    spec = SyntheticSpec(
        num_classes=2, train_per_class=2, val_per_class=1, num_frames=8, height=32, width=32
    )
    real_run_jobs = synthetic._run_jobs

    def crash_midway(*args: object, **kwargs: object) -> Iterator[tuple[str, int]]:
        for i, item in enumerate(real_run_jobs(*args, **kwargs)):  # type: ignore[arg-type]
            if i == 2:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(synthetic, "_run_jobs", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        generate(root, spec, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither ``set`` nor a temporary sibling

    monkeypatch.setattr(synthetic, "_run_jobs", real_run_jobs)
    ensure_synthetic(root, spec, progress=False)
    assert json.loads((root / "spec.json").read_text()) == spec.to_dict()


def test_generate_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        generate(root, SMALL, progress=False)
    assert (root / "notes.txt").read_text() == "keep me"


def test_cli_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "cli"
    argv = ["--root", str(root), "--num-classes", "2", "--train-per-class", "1"]
    argv += ["--val-per-class", "1", "--num-frames", "8", "--height", "32", "--width", "32"]
    assert main([*argv, "--seed", "7", "--no-progress"]) == 0
    stored = json.loads((root / "spec.json").read_text())
    assert (stored["seed"], stored["num_classes"], stored["num_frames"]) == (7, 2, 8)
    assert stored["scene"] == "drift"  # the scene of data=synthetic
    assert (root / "labels.txt").read_text().splitlines() == list(DRIFT_CLASS_NAMES[:2])
    capsys.readouterr()
    assert main([*argv, "--seed", "7", "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*argv, "--height", "33"])
    assert "height" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--background-pan", "0"])  # the drift scene has no background pan
    assert "background_pan" in capsys.readouterr().err
    objects = ["--scene", "objects", "--background-pan", "0", "--max-distractors", "0"]
    assert main([*argv, *objects, "--motion-speed", "2", "--no-progress"]) == 0
    stored = json.loads((root / "spec.json").read_text())
    assert (stored["scene"], stored["background_pan"], stored["max_distractors"]) == (
        "objects",
        0.0,
        0,
    )
    assert stored["motion_speed"] == 2.0
    assert (root / "labels.txt").read_text().splitlines() == list(CLASS_NAMES[:2])


# ------------------------------------------------------------------------------------------
# Rendering: motion is the only cue
# ------------------------------------------------------------------------------------------

RENDER_SPEC = SyntheticSpec(num_frames=16, height=48, width=48)


def test_render_video_is_pure_and_well_formed() -> None:
    for label in range(len(CLASS_NAMES)):
        a = render_video(RENDER_SPEC, label, np.random.default_rng(11))
        b = render_video(RENDER_SPEC, label, np.random.default_rng(11))
        assert a.shape == (16, 48, 48, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
        assert not np.array_equal(a[0], a[-1])  # things move
    with pytest.raises(ValueError, match="label"):
        render_video(RENDER_SPEC, len(CLASS_NAMES), np.random.default_rng(0))


@pytest.mark.parametrize("pair", range(len(CLASS_NAMES) // 2))
def test_paired_classes_are_exact_time_reversals(pair: int) -> None:
    even, odd = 2 * pair, 2 * pair + 1
    for seed in range(3):
        forward = render_video(RENDER_SPEC, even, np.random.default_rng(seed))
        backward = render_video(RENDER_SPEC, odd, np.random.default_rng(seed))
        assert np.array_equal(forward[::-1], backward)


def test_nothing_but_the_motion_depends_on_the_label() -> None:
    # With the same generator state, every class starts from the same frame (odd classes end
    # on it): no color, size, texture, noise or layout is tied to a class.
    for seed in range(3):
        videos = [render_video(RENDER_SPEC, c, np.random.default_rng(seed)) for c in range(8)]
        for c in range(0, 8, 2):
            assert np.array_equal(videos[c][0], videos[0][0])
            assert np.array_equal(videos[c + 1][-1], videos[0][0])
        # ... and the motions do differ.
        assert all(not np.array_equal(videos[c], videos[0]) for c in range(1, 8))


def _ks_uniform(samples: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between ``samples`` (in [0, 1)) and U(0, 1), times sqrt(n)."""
    u = np.sort(samples)
    n = len(u)
    i = np.arange(1, n + 1)
    return float(max((i / n - u).max(), (u - (i - 1) / n).max()) * math.sqrt(n))


def test_single_frame_state_has_the_same_distribution_in_every_class() -> None:
    """The main object's position, angle and scale in any one frame are uniform for all classes.

    A design with a per-class cue in single frames (e.g. "move left" objects starting on the
    right, or growing objects being small at the start) fails this test.
    """
    spec = SyntheticSpec(num_frames=24, height=64, width=64)
    lo, hi = (math.log(v) for v in synthetic.SCALE_RANGE)
    n = 96
    for label in range(len(CLASS_NAMES)):
        states = [
            synthetic._render(spec, label, np.random.default_rng([99, label, i]), pixels=False)[1]
            for i in range(n)
        ]
        for t in (0, spec.num_frames // 2, spec.num_frames - 1):
            normalized = {
                "x": np.array([s["x"][t] for s in states]) / spec.width,
                "y": np.array([s["y"][t] for s in states]) / spec.height,
                "angle": np.array([s["angle"][t] for s in states]) / (2 * math.pi),
                "scale": (np.log([s["scale"][t] for s in states]) - lo) / (hi - lo),
            }
            for name, values in normalized.items():
                assert _ks_uniform(values) < 1.95, (CLASS_NAMES[label], t, name)


def test_motion_is_large_enough_to_see_in_a_clip() -> None:
    """Over 32 frames (16 sampled every 2) the class motion is large in every video."""
    spec = SyntheticSpec(num_frames=33, height=64, width=64)
    for label, name in enumerate(CLASS_NAMES):
        for i in range(10):
            state = synthetic._render(spec, label, np.random.default_rng([7, i]), pixels=False)[1]
            if name.startswith("move"):
                horizontal = name in ("move_left", "move_right")
                axis, size = ("x", spec.width) if horizontal else ("y", spec.height)
                steps = np.diff(state[axis])
                steps = (steps + size / 2) % size - size / 2  # unwrap the torus
                shift = steps.sum()
                assert abs(shift) > 0.12 * size, (name, shift)
                assert (shift < 0) == (name in ("move_left", "move_up"))
            elif name.startswith("rotate"):
                steps = (np.diff(state["angle"]) + math.pi) % (2 * math.pi) - math.pi
                turn = math.degrees(steps.sum())  # image y points down: > 0 is clockwise
                assert abs(turn) > 60.0, (name, turn)
                assert (turn > 0) == (name == "rotate_cw")
            else:
                steps = np.diff(np.log(state["scale"]))
                steps = steps[np.abs(steps) < 0.2]  # drop the sawtooth wrap
                assert abs(steps.sum()) > 0.25, (name, steps.sum())
                assert (steps.sum() > 0) == (name == "grow")


def _track(speed: float, label: int, axis: str) -> np.ndarray:
    """The main object's unwrapped travel along ``axis`` (pixels) at ``motion_speed=speed``."""
    spec = SyntheticSpec(num_frames=16, height=64, width=64, motion_speed=speed)
    position = synthetic._render(spec, label, np.random.default_rng(3), pixels=False)[1][axis]
    return np.cumsum((np.diff(position) + 32) % 64 - 32)


def test_motion_speed_scales_the_class_motion_and_nothing_else() -> None:
    """position = start + wobble - speed * move * t: doubling the speed adds one more motion."""
    for label, axis in ((0, "x"), (2, "y")):
        still, base, fast = (_track(s, label, axis) for s in (1e-9, 1.0, 2.0))
        motion = base - still  # the class motion at speed 1, the wobble removed
        assert abs(motion[-1]) > 5.0  # move_left / move_up travel several pixels
        np.testing.assert_allclose(fast - base, motion, atol=1e-6)


def _still_fraction(video: np.ndarray) -> float:
    """Fraction of pixels that change by less than the noise from the first to the last frame."""
    change = np.abs(video[-1].astype(np.float32) - video[0]).mean(-1)
    return float((change < 12).mean())


def test_still_background_without_distractors_only_the_main_object_moves() -> None:
    """background_pan 0 and max_distractors 0: the pixels away from the object stay put."""
    easy = SyntheticSpec(num_frames=12, height=64, width=64, max_distractors=0, background_pan=0.0)
    standard = SyntheticSpec(num_frames=12, height=64, width=64)
    fractions = []
    for label in range(len(CLASS_NAMES)):
        rng = [11, label]
        still = _still_fraction(synthetic.render_video(easy, label, np.random.default_rng(rng)))
        moving = _still_fraction(
            synthetic.render_video(standard, label, np.random.default_rng(rng))
        )
        assert still > 0.5, (CLASS_NAMES[label], still)
        fractions.append((moving, still))
    # over 11 frames the standard set's panning background changes nearly everywhere
    assert np.mean([m for m, _ in fractions]) < np.mean([s for _, s in fractions]) - 0.2


def test_easier_set_keeps_time_reversal_pairs() -> None:
    """With the easier-set values, the odd class is still the even one played backwards."""
    spec = SyntheticSpec(
        num_frames=10, height=32, width=32, motion_speed=3.0, max_distractors=0, background_pan=0.0
    )
    for pair in range(4):
        even = synthetic.render_video(spec, 2 * pair, np.random.default_rng(9))
        odd = synthetic.render_video(spec, 2 * pair + 1, np.random.default_rng(9))
        np.testing.assert_array_equal(odd, even[::-1])


# ------------------------------------------------------------------------------------------
# The drift scene
# ------------------------------------------------------------------------------------------

DRIFT_SPEC = SyntheticSpec(num_frames=16, height=48, width=64, scene="drift")


@pytest.mark.parametrize("pair", range(len(DRIFT_CLASS_NAMES) // 2))
def test_drift_pairs_are_exact_time_reversals_from_the_same_frame(pair: int) -> None:
    for seed in range(2):
        forward = render_video(DRIFT_SPEC, 2 * pair, np.random.default_rng(seed))
        backward = render_video(DRIFT_SPEC, 2 * pair + 1, np.random.default_rng(seed))
        assert forward.shape == (16, 48, 64, 3) and forward.dtype == np.uint8
        assert np.array_equal(forward[::-1], backward)
        first = render_video(DRIFT_SPEC, 0, np.random.default_rng(seed))[0]
        assert np.array_equal(forward[0], first)  # only the motion depends on the label


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The integer (dx, dy) that best moves image ``a`` onto ``b`` (phase correlation, wrapped)."""
    fa = np.fft.fft2(a.mean(-1) - a.mean())
    fb = np.fft.fft2(b.mean(-1) - b.mean())
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(int(corr.argmax()), corr.shape)
    h, w = corr.shape
    return (dx + w // 2) % w - w // 2, (dy + h // 2) % h - h // 2


def test_drift_content_moves_in_the_direction_its_class_names() -> None:
    """Measured on the pixels (no distractors): the shift between frames 0 and 8 points where
    the class name says, by 8 x DRIFT_SPEED of the frame side."""
    spec = dataclasses.replace(DRIFT_SPEC, max_distractors=0)
    lo, hi = (8 * v * 48 for v in synthetic.DRIFT_SPEED)
    for label, name in enumerate(DRIFT_CLASS_NAMES):
        video = render_video(spec, label, np.random.default_rng([5, label]))
        dx, dy = _shift(video[0], video[8])
        want_x = -1 if "left" in name else 1 if "right" in name else 0
        want_y = -1 if "up" in name else 1 if "down" in name else 0
        assert (np.sign(dx), np.sign(dy)) == (want_x, want_y), (name, dx, dy)
        length = math.hypot(dx, dy)
        assert lo - 1.5 <= length <= hi + 1.5, (name, length)


def test_drift_offset_in_one_frame_is_uniform_in_every_class() -> None:
    spec = SyntheticSpec(num_frames=24, height=64, width=64, scene="drift")
    for label, name in enumerate(DRIFT_CLASS_NAMES):
        states = [
            synthetic._render(spec, label, np.random.default_rng([98, label, i]), pixels=False)[1]
            for i in range(96)
        ]
        for t in (0, spec.num_frames - 1):
            for axis, size in (("x", spec.width), ("y", spec.height)):
                values = np.array([s[axis][t] for s in states]) / size
                assert _ks_uniform(values) < 1.95, (name, t, axis)


def test_generate_a_drift_set_writes_its_class_names(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        num_classes=4,
        train_per_class=1,
        val_per_class=1,
        num_frames=8,
        height=32,
        width=32,
        scene="drift",
    )
    paths = generate(tmp_path / "drift", spec, progress=False, workers=1)
    assert paths["labels"].read_text().splitlines() == list(DRIFT_CLASS_NAMES[:4])
    assert json.loads((tmp_path / "drift" / "spec.json").read_text())["scene"] == "drift"
    assert len(_read_list(paths["train"])) == 4
