"""``videomae-transcode``: a copy of a data set that decodes several times faster for training.

Usage::

    videomae-transcode train.csv --root data/k400 --out data/k400_fast             # H.264, 256 px
    videomae-transcode val.csv --root data/k400 --out data/k400_fast --jobs 16
    videomae-transcode train.csv --root data/ssv2 --out data/ssv2_frames --format frames

Training decodes a short window (16 frames every 2-4) at a random place of each video. In the
files as data sets ship them that window usually lies deep inside a group of pictures (x264's
default puts a key frame every 250 frames), so the decoder first decodes everything from the
previous key frame. The copy fixes that: every video is decoded once, scaled to a short side
(``--short-side``, default 256: training crops 224 from a 256 short side anyway) and re-encoded
as H.264 with a key frame at least every ``--keyint`` frames (16), ``--bframes`` B-frames (3)
between reference frames that no frame refers to (so a clip's decode skips those it does not
want: a 16x4 clip then decodes every fourth frame and the wanted ones) and x264's
``fastdecode`` tuning, or written as a folder of JPEG frames (``--format frames``: no decoding
state at all, many times the disk). Frame count and fps are kept: frame ``i`` of the copy is
frame ``i`` of the source, so lists, ``start``/``total`` ranges and the sampling rules mean the
same.

The list is read like training reads it (any format ``data.list_format`` takes); the copy keeps
each video's path relative to ``--root`` (``a/b.avi`` -> ``a/b.mp4`` or the folder ``a/b/``),
and the list for the copy is written to ``--out`` under the list's own name, the same lines with
the new paths (train with ``data.root=<out>``). A frame-folder entry is not copied: its line
keeps the absolute path of the source folder.

Every output is written under a temporary name and renamed when complete and checked (it
decodes, with the source's frame count and fps), so an interrupted run leaves no half file and
the same command continues it: finished outputs are skipped. A source that cannot be read or
whose copy fails the check is reported (one line on stderr), listed in
``<out>/<list>.failed.txt`` and left out of the new list; the others go on. Work runs in
``--jobs`` processes (default: the CPU count) with a progress bar.

Exit status: 0 when every video was copied, 1 when some failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

__all__ = ["FORMATS", "TranscodeOptions", "build_parser", "main", "output_path", "transcode_one"]

FORMATS = ("h264", "frames")
"""``h264``: an .mp4 with short groups of pictures; ``frames``: a folder of JPEG frames."""


@dataclass(frozen=True)
class TranscodeOptions:
    """How to copy each video.

    Args:
        format: one of :data:`FORMATS`.
        short_side: scale so the short side has this many pixels (None: keep the size; a video
            already smaller is not enlarged). Both sides are kept even (H.264's 4:2:0).
        keyint: H.264 key frame interval (frames).
        bframes: H.264 B-frames between two reference frames (0..16), in a fixed pattern and
            none of them a reference (x264's ``b-pyramid=none``, ``b-adapt=0``).
        crf: H.264 constant rate factor (lower: better and larger).
        preset: x264 preset (encoding speed; decoding speed is the same).
        jpeg_quality: JPEG quality of the frame folders (1..100, Pillow's scale).
    """

    format: str = "h264"
    short_side: int | None = 256
    keyint: int = 16
    crf: int = 23
    preset: str = "veryfast"
    jpeg_quality: int = 90
    bframes: int = 3

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.short_side is not None and self.short_side < 2:
            raise ValueError(f"--short-side must be >= 2, got {self.short_side}")
        if self.keyint < 1:
            raise ValueError(f"--keyint must be >= 1, got {self.keyint}")
        if not 0 <= self.bframes <= 16:
            raise ValueError(f"--bframes must be in 0..16, got {self.bframes}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"--crf must be in 0..51, got {self.crf}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")


def output_path(source: Path, root: Path, out: Path, options: TranscodeOptions) -> Path:
    """Where the copy of ``source`` goes: its path relative to ``root`` under ``out``, with the
    ``.mp4`` suffix (h264) or without a suffix (a folder of frames). A source outside ``root``
    goes under ``out/_external/`` with its absolute path's parts."""
    source_abs, root_abs = Path(os.path.abspath(source)), Path(os.path.abspath(root))
    try:  # the path as listed (a symbolic link keeps its own name and place)
        rel = source_abs.relative_to(root_abs)
    except ValueError:
        rel = Path("_external", *source_abs.parts[1:])
    return out / (rel.with_suffix(".mp4") if options.format == "h264" else rel.with_suffix(""))


def _size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so the short side is ``short_side`` (not enlarged), both even."""
    if short_side is not None and min(height, width) > short_side:
        scale = short_side / min(height, width)
        height, width = round(height * scale), round(width * scale)
    return max(2, height - height % 2), max(2, width - width % 2)


def _encode_h264(source: Path, target: Path, options: TranscodeOptions) -> None:
    """Decode ``source`` and write it to ``target`` as H.264 (.mp4), same frames and rate."""
    import av

    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        height, width = _size(
            stream.codec_context.height, stream.codec_context.width, options.short_side
        )
        with av.open(str(target), mode="w", format="mp4") as dst:
            params = (
                f"keyint={options.keyint}:min-keyint={options.keyint}:scenecut=0:"
                f"bframes={options.bframes}:b-pyramid=none:b-adapt=0"
            )
            out = dst.add_stream(
                "libx264",
                rate=rate,
                options={
                    "crf": str(options.crf),
                    "preset": options.preset,
                    "tune": "fastdecode",
                    "x264-params": params,
                },
            )
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            tick = Fraction(rate.denominator, rate.numerator)  # one frame
            for index, frame in enumerate(src.decode(stream)):
                image = frame.reformat(width=width, height=height, format="yuv420p", threads=1)
                image.pts, image.time_base = index, tick
                for packet in out.encode(image):
                    dst.mux(packet)
            for packet in out.encode(None):
                dst.mux(packet)


def _write_frames(source: Path, target: Path, options: TranscodeOptions) -> None:
    """Decode ``source`` into ``target/img_00001.jpg``, ... (1-based, the official naming)."""
    import av

    target.mkdir(parents=True)
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        height, width = _size(
            stream.codec_context.height, stream.codec_context.width, options.short_side
        )
        for index, frame in enumerate(src.decode(stream), start=1):
            image = frame.reformat(width=width, height=height, format="rgb24", threads=1).to_image()
            image.save(target / f"img_{index:05d}.jpg", quality=options.jpeg_quality)


def _check_copy(source: Path, copy: Path) -> str | None:
    """Why ``copy`` is not a faithful copy of ``source`` (frame count, fps), or None."""
    from videomae.data.decoding import VideoDecodeError, probe

    try:
        want, got = probe(source), probe(copy)
    except VideoDecodeError as error:
        return f"the copy does not read back: {error}"
    if got.num_frames != want.num_frames:
        return f"the copy has {got.num_frames} frames, the source {want.num_frames}"
    if got.fps is not None and want.fps is not None and abs(got.fps - want.fps) > 1e-3 * want.fps:
        return f"the copy runs at {got.fps:.3f} fps, the source at {want.fps:.3f}"
    return None


def transcode_one(task: tuple[str, str, TranscodeOptions]) -> tuple[str, str, str | None]:
    """Copy one video: ``(source, target, options)`` -> ``(source, "done"|"skipped"|"failed",
    why)``. Writes under a temporary name, checks, renames; a finished target is skipped."""
    source, target, options = Path(task[0]), Path(task[1]), task[2]
    if target.exists():
        return str(source), "skipped", None
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    if options.format == "h264":
        partial = partial.with_suffix(".mp4")  # the muxer goes by the suffix
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if options.format == "h264":
            _encode_h264(source, partial, options)
        else:
            _write_frames(source, partial, options)
        why = _check_copy(source, partial)
        if why is None:
            os.replace(partial, target)
            return str(source), "done", None
    except Exception as error:  # a broken source must not stop the others
        why = f"{type(error).__name__}: {error}"
    if partial.is_dir():
        shutil.rmtree(partial, ignore_errors=True)
    elif partial.exists():
        partial.unlink()
    return str(source), "failed", why


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="videomae-transcode",
        description="Copy every video of a list into a form that decodes several times faster "
        "for training (H.264 with short groups of pictures, or JPEG frame folders).",
    )
    parser.add_argument("list", help="the list file (any format training reads) or class tree")
    parser.add_argument("--root", required=True, help="folder the list's paths are relative to")
    parser.add_argument("--out", required=True, help="folder of the copy (and of its list)")
    parser.add_argument(
        "--format", choices=FORMATS, default="h264", help="h264 (default) or frames"
    )
    parser.add_argument("--short-side", type=int, default=256, help="0 keeps the size (256)")
    parser.add_argument("--keyint", type=int, default=16, help="H.264 key frame interval (16)")
    parser.add_argument(
        "--bframes", type=int, default=3, help="H.264 B-frames, none a reference (3; 0: none)"
    )
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality, lower is better (23)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset (veryfast)")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="frames: 1..100 (90)")
    parser.add_argument("--list-format", default="auto", help="as data.list_format (auto)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    return parser


def _line_for(record: object, new_path: str) -> str:
    """The list line of ``record`` with its path replaced (official or V2 format)."""
    start, total, label = record.start, record.total, record.label  # type: ignore[attr-defined]
    if start or total is not None:
        return f"{new_path} {start} {-1 if total is None else total} {label}\n"
    return f"{new_path} {label}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    from videomae.cli.pool import map_with_progress
    from videomae.data.lists import read_list

    args = build_parser().parse_args(argv)
    try:
        options = TranscodeOptions(
            format=args.format,
            short_side=args.short_side or None,
            keyint=args.keyint,
            bframes=args.bframes,
            crf=args.crf,
            preset=args.preset,
            jpeg_quality=args.jpeg_quality,
        )
        root, out = Path(args.root), Path(args.out)
        records = read_list(args.list, root, args.list_format)
    except (OSError, ValueError) as error:
        print(f"videomae-transcode: error: {error}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"videomae-transcode: error: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    tasks, targets = [], {}
    for record in records:
        if record.path.is_dir() or str(record.path) in targets:
            continue  # frame folders stay where they are; a repeated entry is copied once
        target = output_path(record.path, root, out, options)
        targets[str(record.path)] = target
        tasks.append((str(record.path), str(target), options))
    outcome: dict[str, tuple[str, str | None]] = {}
    for source, status, why in map_with_progress(transcode_one, tasks, args.jobs, "transcoding"):
        outcome[source] = (status, why)
        if status == "failed":
            print(f"{source}: {why}", file=sys.stderr)

    name = Path(args.list).name if Path(args.list).is_file() else f"{Path(args.list).name}.csv"
    failed = [s for s, (status, _) in outcome.items() if status == "failed"]
    lines = []
    for record in records:
        if str(record.path) in failed:
            continue
        target = targets.get(str(record.path))
        path = str(record.path.resolve()) if target is None else target.relative_to(out).as_posix()
        lines.append(_line_for(record, path))
    (out / name).write_text("".join(lines), encoding="utf-8")
    failures = out / f"{name}.failed.txt"
    if failed:
        failures.write_text("".join(f"{s}\t{outcome[s][1]}\n" for s in failed), encoding="utf-8")
    elif failures.exists():
        failures.unlink()
    counts = {k: sum(1 for st, _ in outcome.values() if st == k) for k in ("done", "skipped")}
    print(
        f"{len(records)} videos: {counts['done']} copied, {counts['skipped']} already there, "
        f"{len(failed)} failed{f' (listed in {failures})' if failed else ''}; "
        f"list for the copy: {out / name} (train with data.root={out})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
