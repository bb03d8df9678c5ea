"""``videomae-doctor``: check every video of a list before training on it.

Usage::

    videomae-doctor train.csv --root data/k400                       # 16 frames every 4
    videomae-doctor train.csv --root data/ssv2 --sampling segment    # 16 segments
    videomae-doctor train.csv --root data/k400 --decode --write-clean train_clean.csv
    videomae-doctor data/ucf101/videos --root data/ucf101 --json     # a folder-per-class tree

Every entry is checked in parallel (a process pool, ``--workers``, default: the CPU count) with a
progress bar on stderr. Each bad entry gets one line on stdout, its path and what is wrong:
missing, empty, cannot open (truncated or corrupt, not a video), no video stream, fewer frames
than a clip needs (both numbers), no fps, truncated (the header announces more frames than can be
read), and with ``--decode`` a clip's frames (first, middle and last of the centered test clip)
that fail to decode. Then a summary: counts, the most common resolutions, fps and lengths (frames
and seconds, min / median / max). ``--json`` prints one JSON object instead.

``--write-clean OUT`` writes the list without the bad entries: the same lines, verbatim, in the
same order (a folder-per-class tree is written as an official ``path label`` list of paths
relative to ``--root``).

Exit status: 0 when every entry is good, 1 when any is bad, 2 on a usage error (missing list,
bad arguments, a malformed list).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EntryReport", "build_parser", "check_entry", "main"]

# A container whose header announces more frames than can be read by this much is truncated.
_TRUNCATED_FRACTION = 0.9
_TRUNCATED_MIN_FRAMES = 2


@dataclass(frozen=True)
class _ClipSpec:
    """What one clip needs: ``dense`` (num_frames every sampling_rate) or ``segment``."""

    sampling: str
    num_frames: int
    sampling_rate: int
    min_frames: int | None = None

    @property
    def frames_needed(self) -> int:
        """Frames a video needs: ``min_frames``, by default ``num_frames`` (the training rule of
        ``data.min_frames``; longer videos shorter than a dense window repeat their last frame)."""
        return self.num_frames if self.min_frames is None else self.min_frames

    @property
    def span(self) -> int:
        """Frames a clip covers without repeating one (the dense window, or the segments)."""
        from videomae.data.sampling import window_span

        if self.sampling == "segment":
            return self.num_frames
        return window_span(self.num_frames, self.sampling_rate)

    def describe(self) -> str:
        """``a 16x4 clip (spans 61)`` / ``16 segments``, for messages."""
        if self.sampling == "segment":
            return f"{self.num_frames} segments"
        return f"a {self.num_frames}x{self.sampling_rate} clip (spans {self.span})"

    def test_indices(self, length: int):
        """The centered (validation) clip of a ``length``-frame video."""
        from videomae.data.sampling import dense_indices, segment_indices

        if self.sampling == "segment":
            return segment_indices(length, self.num_frames, None)
        return dense_indices(length, self.num_frames, self.sampling_rate, None)


@dataclass
class EntryReport:
    """The verdict on one list entry.

    Attributes:
        path: the video file or frame folder.
        line: its line in the list (position in a folder tree).
        problems: what is wrong, one phrase each; empty when the entry is good.
        num_frames, fps, width, height, duration_s, codec, backend: from
            :func:`videomae.data.decoding.probe` when the entry could be opened.
    """

    path: str
    line: int
    problems: list[str] = field(default_factory=list)
    num_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    codec: str | None = None
    backend: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with the entry."""
        return not self.problems


def _cause_phrase(cause: str) -> str:
    """Lead the cause of a decode error with the doctor's words (``cannot open`` ...)."""
    for start in ("truncated or corrupt", "not a video file"):
        if cause.startswith(start):
            return f"cannot open: {cause}"
    if cause.startswith("file not found"):
        return "missing"
    if cause.startswith("file is empty"):
        return "empty (0 bytes)"
    return cause


def check_entry(task: tuple[str, int, int, int | None, _ClipSpec, bool]) -> EntryReport:
    """Check one entry ``(path, line, start, total, clip, decode)``; runs in a pool worker."""
    import warnings

    from videomae.data.decoding import VideoDecodeError, probe, read_frames

    path, line, start, total, clip, decode = task
    report = EntryReport(path=path, line=line)
    if not os.path.exists(path):
        report.problems.append("missing")
        return report
    try:
        info = probe(path, start=start, total=total)
    except VideoDecodeError as err:
        report.problems.append(_cause_phrase(err.cause or str(err)))
        return report
    for name in ("num_frames", "fps", "width", "height", "duration_s", "codec", "backend"):
        setattr(report, name, getattr(info, name))
    if info.backend != "frames" and info.fps is None:
        report.problems.append("no fps")
    declared = info.declared_frames
    if (
        total is None
        and declared is not None
        and info.num_frames < _TRUNCATED_FRACTION * declared
        and declared - info.num_frames >= _TRUNCATED_MIN_FRAMES
    ):
        report.problems.append(
            f"truncated: the header announces {declared} frames, only {info.num_frames} can be read"
        )
    if info.num_frames < clip.frames_needed:
        report.problems.append(
            f"too short: {info.num_frames} frames, {clip.describe()} needs {clip.frames_needed}"
        )
    if decode:
        indices = clip.test_indices(info.num_frames)
        picks = sorted({int(indices[0]), int(indices[len(indices) // 2]), int(indices[-1])})
        for k in picks:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    read_frames(path, lambda n, k=k: [k], start=start, total=total)
            except VideoDecodeError as err:
                report.problems.append(f"decode fails at frame {k}: {err.cause or err}")
                break
    return report


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    from videomae.data.lists import LIST_FORMATS
    from videomae.data.sampling import SAMPLING_CHOICES

    parser = argparse.ArgumentParser(
        prog="videomae-doctor",
        description="Check every video of a list (missing, unreadable, too short, no fps, ...), "
        "summarize resolutions, fps and lengths, and optionally write the list without the "
        "bad entries. Exit status 1 when any entry is bad.",
    )
    parser.add_argument("list", help="list file (or a folder-per-class tree)")
    parser.add_argument("--root", required=True, help="folder that list paths are relative to")
    parser.add_argument(
        "--list-format",
        default="auto",
        choices=LIST_FORMATS,
        help="list format (default: auto)",
    )
    parser.add_argument(
        "--sampling",
        default="dense",
        choices=SAMPLING_CHOICES,
        help="clip sampling: dense (num-frames every sampling-rate) or segment (one frame per "
        "segment, Something-Something); decides how many frames a video needs",
    )
    parser.add_argument("--num-frames", type=int, default=16, help="frames per clip (16)")
    parser.add_argument("--sampling-rate", type=int, default=4, help="stride of dense clips (4)")
    parser.add_argument(
        "--min-frames",
        type=int,
        default=None,
        help="videos with fewer frames are bad (default: --num-frames, the training rule "
        "data.min_frames; pass the window span, e.g. 61 for 16x4, to refuse repeated frames)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: CPU count)"
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="also decode the first, middle and last frame of the centered clip",
    )
    parser.add_argument("--write-clean", metavar="OUT", help="write the list without bad entries")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _run_checks(tasks: list[tuple], workers: int) -> list[EntryReport]:
    """Check every task (in a process pool when ``workers > 1``) with a progress bar."""
    from videomae.cli.pool import map_with_progress

    return list(map_with_progress(check_entry, tasks, workers, desc="checking"))


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    """``{"min", "median", "max"}`` of ``values`` (None when empty)."""
    if not values:
        return None
    return {
        "min": float(min(values)),
        "median": float(statistics.median(values)),
        "max": float(max(values)),
    }


def summarize(reports: Sequence[EntryReport], top: int = 5) -> dict[str, Any]:
    """Counts, the ``top`` most common resolutions, and fps / length statistics."""
    readable = [r for r in reports if r.num_frames is not None]
    sizes = Counter(f"{r.width}x{r.height}" for r in readable)
    return {
        "entries": len(reports),
        "ok": sum(r.ok for r in reports),
        "bad": sum(not r.ok for r in reports),
        "resolutions": dict(sizes.most_common(top)),
        "distinct_resolutions": len(sizes),
        "fps": _stats([r.fps for r in readable if r.fps]),
        "frames": _stats([r.num_frames for r in readable]),
        "seconds": _stats([r.duration_s for r in readable if r.duration_s is not None]),
        "decord_fallback": sum(r.backend == "decord" for r in readable),
    }


def _fmt_stats(stats: dict[str, float] | None, digits: int) -> str:
    """``min 1 / median 2 / max 3`` (``n/a`` without values)."""
    if stats is None:
        return "n/a"
    return " / ".join(f"{k} {v:.{digits}f}" for k, v in stats.items())


def _print_text(reports: Sequence[EntryReport], summary: dict[str, Any]) -> None:
    """The human-readable report: one line per bad entry, then the summary."""
    for r in reports:
        if not r.ok:
            print(f"BAD {r.path} (line {r.line}): {'; '.join(r.problems)}")
    print(f"checked {summary['entries']} entries: {summary['ok']} ok, {summary['bad']} bad")
    sizes = ", ".join(f"{k} ({v})" for k, v in summary["resolutions"].items()) or "n/a"
    more = summary["distinct_resolutions"] - len(summary["resolutions"])
    print(f"resolutions: {sizes}{f', and {more} more' if more > 0 else ''}")
    print(f"fps: {_fmt_stats(summary['fps'], 2)}")
    print(f"length (frames): {_fmt_stats(summary['frames'], 0)}")
    print(f"length (seconds): {_fmt_stats(summary['seconds'], 2)}")
    if summary["decord_fallback"]:
        print(f"read by decord (PyAV cannot): {summary['decord_fallback']}")


def _write_clean(
    out: Path, list_path: Path, root: Path, records, bad_lines: set[int], from_tree: bool
) -> int:
    """Write the list without the entries on ``bad_lines``; returns the number of entries."""
    out.parent.mkdir(parents=True, exist_ok=True)
    kept = 0
    with out.open("w", encoding="utf-8") as f:
        if from_tree:
            for r in records:
                if r.line not in bad_lines:
                    rel = os.path.relpath(r.path, root)
                    f.write(f"{rel} {r.label}\n")
                    kept += 1
            return kept
        with list_path.open("r", encoding="utf-8") as src:
            listed = {r.line for r in records}
            for line_no, raw in enumerate(src, start=1):
                if line_no in bad_lines:
                    continue
                f.write(raw if raw.endswith("\n") else raw + "\n")
                kept += line_no in listed
    return kept


def main(argv: list[str] | None = None) -> int:
    """Run the doctor; returns the exit status (0 all good, 1 bad entries, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    for name in ("num_frames", "sampling_rate", "min_frames"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(
                f"videomae-doctor: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr
            )
            return 2
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        print("videomae-doctor: error: --workers must be >= 1", file=sys.stderr)
        return 2

    from videomae.data.lists import detect_list_format, read_list

    list_path = Path(args.list)
    try:
        list_format = args.list_format
        if list_format == "auto":
            list_format = detect_list_format(list_path)
        records = read_list(list_path, args.root, list_format)
    except (FileNotFoundError, ValueError) as err:
        print(f"videomae-doctor: error: {err}", file=sys.stderr)
        return 2

    clip = _ClipSpec(args.sampling, args.num_frames, args.sampling_rate, args.min_frames)
    tasks = [(str(r.path), r.line, r.start, r.total, clip, args.decode) for r in records]
    reports = _run_checks(tasks, workers)
    summary = summarize(reports)

    if args.write_clean:
        bad_lines = {r.line for r in reports if not r.ok}
        root = Path(os.path.abspath(args.root))
        kept = _write_clean(
            Path(args.write_clean), list_path, root, records, bad_lines, list_format == "folders"
        )
        summary["clean_list"] = {"path": str(args.write_clean), "entries": kept}

    if args.json:
        payload = {
            "list": str(list_path),
            "list_format": list_format,
            "summary": summary,
            "bad": [asdict(r) for r in reports if not r.ok],
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_text(reports, summary)
        if args.write_clean:
            print(f"wrote {summary['clean_list']['entries']} good entries to {args.write_clean}")
    return 1 if summary["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
