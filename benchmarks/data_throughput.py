"""Data pipeline throughput: clips/s of one worker process, ours vs the official way.

Four pipelines run on the same video files in one process (no DataLoader,
``torch.set_num_threads(1)``, one decoder thread), so clips/s is what one DataLoader worker
delivers:

- (a) ``decode``: :func:`videomae.data.decoding.read_frames` of one training clip's frames, with
  no augmentation: the limit of any pipeline that decodes with one thread;
- (b) ``ours pretrain``: :class:`videomae.data.datasets.VideoClipDataset` items with
  ``PretrainTransform`` (multi-scale crop on the whole clip, normalize);
- (c) ``ours finetune``: the same dataset with ``FinetuneTransform`` (random resized crop, flip
  where allowed, RandAugment m7-n4-mstd0.5, random erasing 0.25; segment sampling for the
  SSv2-like files);
- (d) ``official``: the official VideoMAE pretraining loader, written here from its description:
  decord ``VideoReader(num_threads=1)``, ``get_batch`` of the clip's indices, ``.asnumpy()``,
  one PIL image per frame (``Image.fromarray(frame).convert("RGB")``), GroupMultiScaleCrop (one
  crop box per clip, then ``img.crop(box).resize((224, 224), BILINEAR)`` on every frame),
  per-frame ``to_tensor`` and ``normalize``, stacked to ``(C, T, H, W)``.

Each runs at ``num_sample`` 1 and 4. With repeated augmentation (b) and (c) decode once and return 4
differently augmented clips (stacked per item here; the training loader leaves the stacking to its
collation, ``loader_per_worker.py`` times that); the official pretraining loader has none, so (d)
decodes 4 times for 4 clips. Clips are 16 frames at 224 px: every 4th frame (dense) for the
Kinetics-like files, every 2nd for the SSv2-like files (their official pretraining rate). (a), (b)
and (d) decode the same frames: before every item torch's generator is seeded the same way, and (a)
and (d) draw their window through the dataset's own generator and sampler.

Files: ``../shared/videos/*`` plus clips the script generates once into ``--cache`` (default
``data/benchmark_videos``): Kinetics-like (340x256 H.264 .mp4, 300 frames at 30 fps, a key frame
every 250 frames) and SSv2-like (426x240 VP9 .webm, 12 fps, 50 frames), with moving shapes on a
panning texture (the synthetic set's renderer).

    python benchmarks/data_throughput.py --write    # the table, also into BENCHMARKS.md
    python benchmarks/data_throughput.py --quick    # one round on fewer files: a smoke test

Targets (data issue): (b) >= 0.9x (a) and >= 1.5x (d) at num_sample=1; (b) >= 3x (d) at
num_sample=4.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av  # before decord (decord loaded first breaks PyAV on some builds); isort keeps it first
import decord
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from videomae.constants import IMAGENET_MEAN, IMAGENET_STD
from videomae.data.datasets import VideoClipDataset
from videomae.data.decoding import read_frames
from videomae.data.lists import VideoRecord
from videomae.data.transforms import MultiScaleCrop, PretrainTransform

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "videos"
DEFAULT_CACHE = ROOT / "data" / "benchmark_videos"
SECTION = "Data throughput (CPU, one worker process)"
RAND_AUGMENT = "rand-m7-n4-mstd0.5-inc1"
KINETICS_SUFFIXES = (".mp4", ".avi", ".mkv")
SSV2_SUFFIXES = (".webm",)


# ----------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class ClipKind:
    """A kind of generated benchmark video."""

    name: str
    suffix: str
    codec: str
    width: int
    height: int
    frames: int
    fps: int
    gop: int | None
    options: tuple[tuple[str, str], ...]

    def file_name(self, index: int) -> str:
        """Cache file name; it names every parameter, so changing one makes a new file."""
        gop = f"_g{self.gop}" if self.gop else ""
        return (
            f"{self.name}_{self.width}x{self.height}_{self.frames}f_{self.fps}fps{gop}"
            f"_{index}{self.suffix}"
        )


KINETICS_LIKE = ClipKind(
    "kinetics_like", ".mp4", "libx264", 340, 256, 300, 30, 250,
    (("crf", "23"), ("preset", "medium"), ("threads", "1")),
)  # fmt: skip
SSV2_LIKE = ClipKind(
    "ssv2_like", ".webm", "libvpx-vp9", 426, 240, 50, 12, None,
    (("crf", "32"), ("b:v", "0"), ("cpu-used", "4"), ("threads", "1")),
)  # fmt: skip


def encode(frames: np.ndarray, path: Path, kind: ClipKind) -> None:
    """Encode uint8 RGB ``(T, H, W, 3)`` frames as ``kind`` into ``path`` (written atomically)."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(
            kind.codec, rate=Fraction(kind.fps), options=dict(kind.options)
        )
        stream.width, stream.height, stream.pix_fmt = kind.width, kind.height, "yuv420p"
        if kind.gop:
            stream.codec_context.gop_size = kind.gop
        for i, picture in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(tmp, path)


def generate(cache: Path, kind: ClipKind, count: int) -> list[Path]:
    """The ``count`` generated videos of ``kind`` in ``cache``, made where missing."""
    from videomae.data.synthetic import SyntheticSpec, render_video

    cache.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(num_frames=kind.frames, height=kind.height, width=kind.width)
    paths = []
    for i in range(count):
        path = cache / kind.file_name(i)
        if not path.is_file():
            print(f"generating {path} ...", file=sys.stderr, flush=True)
            rng = np.random.default_rng([2024, i, kind.frames])
            encode(render_video(spec, i % spec.num_classes, rng), path, kind)
        paths.append(path)
    return paths


def probe(path: Path) -> dict[str, Any]:
    """Container facts of a video: codec, size, frames, fps, key frames, kbit/s."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        keyframes = sum(1 for p in container.demux(stream) if p.size and p.is_keyframe)
    frames = len(decord.VideoReader(str(path), num_threads=1))
    seconds = frames / fps if fps else float("nan")
    kbps = path.stat().st_size * 8 / 1000 / seconds
    return {
        "file": path.name,
        "codec": codec,
        "size": f"{width}x{height}",
        "frames": frames,
        "fps": fps,
        "keyframes": keyframes,
        "kbps": kbps,
    }


# ----------------------------------------------------------------------------------- groups
@dataclass
class Group:
    """Files sampled alike, and the datasets / samplers of every pipeline for them."""

    name: str
    paths: list[Path]
    pretrain_rate: int
    finetune_sampling: str
    flip: bool
    datasets: dict[tuple[str, int], Any] = field(default_factory=dict)


def make_groups(shared: Path, cache: Path, generated: int) -> list[Group]:
    """Kinetics-like (dense, rate 4, flip) and SSv2-like (rate 2 / segments, no flip) files."""
    shared_files = sorted(shared.glob("*")) if shared.is_dir() else []
    if not shared_files:
        print(f"note: no shared videos in {shared}; generated clips only", file=sys.stderr)
    kinetics = [p for p in shared_files if p.suffix.lower() in KINETICS_SUFFIXES]
    ssv2 = [p for p in shared_files if p.suffix.lower() in SSV2_SUFFIXES]
    kinetics += generate(cache, KINETICS_LIKE, generated)
    ssv2 += generate(cache, SSV2_LIKE, generated)
    return [
        Group("kinetics-like", kinetics, pretrain_rate=4, finetune_sampling="dense", flip=True),
        Group("ssv2-like", ssv2, pretrain_rate=2, finetune_sampling="segment", flip=False),
    ]


def build_datasets(group: Group, num_frames: int, img_size: int, samples: list[int]) -> None:
    """``group.datasets[(pipeline, num_sample)]`` for ours; errors are stored, not raised."""
    records = [VideoRecord(path=p, label=0, line=i + 1) for i, p in enumerate(group.paths)]
    common = {"num_frames": num_frames, "train": True, "decode_threads": 1, "on_error": "raise"}
    for ns in samples:
        group.datasets[("pretrain", ns)] = VideoClipDataset(
            records,
            sampling_rate=group.pretrain_rate,
            transform=PretrainTransform(img_size, flip=False),
            sampling="dense",
            num_sample=ns,
            **common,
        )
        try:
            from videomae.data.transforms import FinetuneTransform

            transform = FinetuneTransform(
                img_size, flip=group.flip, rand_augment=RAND_AUGMENT, reprob=0.25
            )
            group.datasets[("finetune", ns)] = VideoClipDataset(
                records,
                sampling_rate=group.pretrain_rate,
                transform=transform,
                sampling=group.finetune_sampling,
                num_sample=ns,
                **common,
            )
        except (ImportError, TypeError, ValueError) as error:
            group.datasets[("finetune", ns)] = error


# ----------------------------------------------------------------------------------- pipelines
def official_clip(
    path: Path,
    sampler: Callable[[int], np.ndarray],
    crop_rng: np.random.Generator,
    img_size: int,
) -> torch.Tensor:
    """(d): one clip the official way (see the module docstring); float32 ``(C, T, H, W)``.

    ``sampler`` maps the video's frame count to the clip's frame indices.
    """
    reader = decord.VideoReader(str(path), num_threads=1, ctx=decord.cpu(0))
    indices = sampler(len(reader))
    buffer = reader.get_batch(list(indices)).asnumpy()
    # one PIL image per frame (``convert("RGB")`` as the official loader does: a copy)
    images = [Image.fromarray(buffer[i]).convert("RGB") for i in range(len(buffer))]
    width, height = images[0].size
    # GroupMultiScaleCrop: one box for the clip (the official scale/position rule, which our
    # MultiScaleCrop implements), then crop + resize every frame in PIL
    top, left, crop_h, crop_w = MultiScaleCrop(img_size).sample(height, width, crop_rng)
    box = (left, top, left + crop_w, top + crop_h)
    images = [img.crop(box).resize((img_size, img_size), Image.BILINEAR) for img in images]
    frames = [TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD) for img in images]
    return torch.stack(frames, dim=1)


@dataclass
class Pipeline:
    """One row of the table: a pipeline at one ``num_sample``, with its timings per group."""

    key: str  # a, b, c, d
    label: str
    num_sample: int
    seconds: dict[str, float] = field(default_factory=dict)
    clips: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        """Row name, e.g. ``(b) ours pretrain``."""
        return f"({self.key}) {self.label}"

    def rate(self, group: str | None = None) -> float:
        """Clips/s over one group's files, or over all files."""
        groups = [group] if group else list(self.seconds)
        seconds = sum(self.seconds.get(g, 0.0) for g in groups)
        clips = sum(self.clips.get(g, 0) for g in groups)
        return clips / seconds if seconds else float("nan")


def item_seed(round_: int, group: int, file: int, k: int) -> int:
    """torch seed set before an item: equal for every pipeline, so they draw the same windows."""
    # round -1 is the warm-up
    return int(np.random.SeedSequence([round_ + 1, group, file, k]).generate_state(1)[0])


def run_one(
    pipeline: Pipeline, group: Group, gi: int, j: int, round_: int, img_size: int
) -> tuple[float, int]:
    """Make ``pipeline.num_sample`` clips from file ``j`` of ``group``; (seconds, clips)."""
    ns = pipeline.num_sample
    shape = (3, group.datasets[("pretrain", 1)].num_frames, img_size, img_size)
    sampler_ds = group.datasets[("pretrain", 1)]  # (a) and (d) draw their windows with it
    if pipeline.key in ("b", "c"):
        ds = group.datasets[("pretrain" if pipeline.key == "b" else "finetune", ns)]
        if isinstance(ds, Exception):
            raise ds
        torch.manual_seed(item_seed(round_, gi, j, 0))
        start = time.perf_counter()
        video = ds[j]["video"]
        seconds = time.perf_counter() - start
        expected = (ns, *shape) if ns > 1 else shape
        if tuple(video.shape) != expected or video.dtype != torch.float32:
            raise RuntimeError(f"item video {tuple(video.shape)} {video.dtype}, want {expected}")
        return seconds, ns
    seconds = 0.0
    for k in range(ns if pipeline.key == "d" else 1):
        torch.manual_seed(item_seed(round_, gi, j, k))
        start = time.perf_counter()
        rng = sampler_ds._rng(j)  # the dataset's own generator for this item and seed

        def sampler(length: int, rng: np.random.Generator = rng) -> np.ndarray:
            return sampler_ds.frame_indices(length, rng)

        if pipeline.key == "a":
            out = read_frames(group.paths[j], sampler, num_threads=1)
            want: tuple[int, ...] = (shape[1], -1, -1, 3)
        else:
            out = official_clip(group.paths[j], sampler, rng, img_size)
            want = shape
        seconds += time.perf_counter() - start
        if any(w not in (-1, s) for w, s in zip(want, out.shape, strict=True)):
            raise RuntimeError(f"{pipeline.name} returned {tuple(out.shape)}, want {want}")
    return seconds, (ns if pipeline.key == "d" else 1)


def measure(groups: list[Group], pipelines: list[Pipeline], rounds: int, img_size: int) -> None:
    """One warm-up round, then ``rounds`` rounds; every file runs every pipeline in turn (so
    drift in the machine's speed hits all of them alike)."""
    for round_ in range(-1, rounds):
        for gi, group in enumerate(groups):
            for j in range(len(group.paths)):
                for p in pipelines:
                    if p.error:
                        continue
                    try:
                        seconds, clips = run_one(p, group, gi, j, round_, img_size)
                    except Exception as error:  # shown in the table; the others still run
                        p.error = f"{type(error).__name__}: {error}"
                        print(f"{p.name} x{p.num_sample} failed: {p.error}", file=sys.stderr)
                        continue
                    if round_ >= 0:
                        p.seconds[group.name] = p.seconds.get(group.name, 0.0) + seconds
                        p.clips[group.name] = p.clips.get(group.name, 0) + clips
        if round_ >= 0:
            print(f"round {round_ + 1}/{rounds} done", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- report
def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def targets(p: Pipeline, ref: dict[tuple[str, int], Pipeline]) -> str:
    """The issue's targets that apply to row ``p``, with PASS/FAIL."""
    if p.key != "b" or p.error:
        return ""
    d = ref.get(("d", p.num_sample))
    a = ref.get(("a", 1))
    checks = []
    if p.num_sample == 1:
        if a and not a.error:
            checks.append(f">= 0.9x (a): {_mark(p.rate() >= 0.9 * a.rate())}")
        if d and not d.error:
            checks.append(f">= 1.5x (d): {_mark(p.rate() >= 1.5 * d.rate())}")
    elif p.num_sample == 4 and d and not d.error:
        checks.append(f">= 3x (d): {_mark(p.rate() >= 3.0 * d.rate())}")
    return "; ".join(checks)


def table(pipelines: list[Pipeline], groups: list[Group]) -> str:
    """Markdown table: clips/s overall and per group, ratios to (a) and to (d)."""
    ref = {(p.key, p.num_sample): p for p in pipelines}
    names = [f"{g.name} ({len(g.paths)} files)" for g in groups]
    lines = [
        "| pipeline | num_sample | clips/s | "
        + " | ".join(names)
        + " | vs (a) | vs (d) | target |",
        "| --- | --- | --- | " + " | ".join("---" for _ in groups) + " | --- | --- | --- |",
    ]
    for p in sorted(pipelines, key=lambda q: (q.num_sample, q.key)):
        if p.error:
            lines.append(
                f"| {p.name} | {p.num_sample} | failed: {p.error[:90]} | "
                + " | ".join("" for _ in groups)
                + " | | | |"
            )
            continue
        a, d = ref.get(("a", 1)), ref.get(("d", p.num_sample))
        vs_a = f"{p.rate() / a.rate():.2f}x" if a and not a.error else ""
        vs_d = f"{p.rate() / d.rate():.2f}x" if d and not d.error else ""
        per_group = " | ".join(f"{p.rate(g.name):.2f}" for g in groups)
        lines.append(
            f"| {p.name} | {p.num_sample} | {p.rate():.2f} | {per_group} | {vs_a} | {vs_d} | "
            f"{targets(p, ref)} |"
        )
    return "\n".join(lines)


def file_table(facts: list[dict[str, Any]]) -> str:
    """Markdown table of the files the pipelines read."""
    lines = [
        "| file | codec | size | frames | fps | key frames | kbit/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {f['file']} | {f['codec']} | {f['size']} | {f['frames']} | {f['fps']:.0f} | "
        f"{f['keyframes']} | {f['kbps']:.0f} |"
        for f in facts
    ]
    return "\n".join(lines)


def _model_throughput() -> Any:
    """benchmarks/model_throughput.py as a module (its ``machine`` and BENCHMARKS.md writer)."""
    spec = importlib.util.spec_from_file_location(
        "model_throughput", Path(__file__).with_name("model_throughput.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Parse options, make the files, time every pipeline, print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED_VIDEOS, help="real clips")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="generated clips")
    parser.add_argument("--generated", type=int, default=2, help="generated clips per kind")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the files")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4], help="num_sample values")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 generated clip per kind")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    parser.add_argument("--section", default=SECTION, help="BENCHMARKS.md section name")
    args = parser.parse_args(argv)
    if args.quick and args.write:
        parser.error("--quick results are not benchmark numbers; run without --quick to --write")
    if args.quick:
        args.rounds, args.generated = 1, 1
    samples = sorted(set(args.samples) | {1})

    torch.set_num_threads(1)
    groups = make_groups(args.shared, args.cache, args.generated)
    facts = [probe(p) for g in groups for p in g.paths]
    for group in groups:
        build_datasets(group, args.num_frames, args.img_size, samples)
    pipelines = [Pipeline("a", "decode", 1)]
    for ns in samples:
        pipelines += [
            Pipeline("b", "ours pretrain", ns),
            Pipeline("c", "ours finetune", ns),
            Pipeline("d", "official", ns),
        ]
    measure(groups, pipelines, args.rounds, args.img_size)

    text = table(pipelines, groups)
    print(file_table(facts))
    print()
    print(text)
    if args.write:
        mt = _model_throughput()
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        today = datetime.date.today().isoformat()
        body = (
            f"## {args.section}\n\n"
            f"`python benchmarks/data_throughput.py {' '.join(argv or sys.argv[1:])}` at {commit} "
            f"on {mt.machine()}, {today}. One process, `torch.set_num_threads(1)`, one decoder "
            f"thread: clips/s of one DataLoader worker. Clips of {args.num_frames} frames at "
            f"{args.img_size} px (Kinetics-like files: every 4th frame; SSv2-like: every 2nd, "
            "segment sampling for fine-tuning); (a), (b) and (d) decode the same frames. "
            f"Timed passes over the files: {args.rounds}, after one warm-up pass, the pipelines "
            "taking turns on each file. (a) decode only (`read_frames`); (b) our pretraining "
            "dataset (`PretrainTransform`); (c) our fine-tuning dataset (`FinetuneTransform`: "
            "RandAugment m7-n4, random erasing 0.25); (d) the official way (one-thread decord, "
            "per-frame PIL multi-scale crop + resize, per-frame to_tensor + normalize). At "
            "num_sample 4, (b) and (c) decode once for 4 clips, (d) decodes 4 times. "
            "vs (a): against (a); vs (d): against (d) at the same num_sample.\n\n"
            f"{file_table(facts)}\n\n{text}\n"
        )
        mt.write_benchmarks_md(args.section, body)
        print(f"wrote section '{args.section}' of {ROOT / 'BENCHMARKS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
