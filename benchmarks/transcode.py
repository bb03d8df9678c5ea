"""What ``videomae-transcode`` buys: decode speed and disk cost of each kind of copy.

Kinetics-like files (340x256 H.264, 300 frames at 30 fps, a key frame every 250: x264's default,
generated as ``benchmarks/data_throughput.py`` does) are copied with ``videomae-transcode`` in each
form below; then one process (one torch thread, one decoder thread) reads pretraining clips (16
frames every 4 at a random place, as ``data=k400`` samples them) from the originals and from each
copy, the forms taking turns on each file, and times the decode (``read_frames``) and the
decode plus the pretraining transform (uint8 crop and resize to 224). Prints one table and, with
``--write``, puts it in BENCHMARKS.md with the machine.

    python benchmarks/transcode.py --files 4 --clips 24 --write
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, generate  # noqa: E402
from model_throughput import commit, machine, publish  # noqa: E402

from videomae.cli.transcode import TranscodeOptions, output_path, transcode_one  # noqa: E402
from videomae.data.decoding import read_frames  # noqa: E402
from videomae.data.sampling import dense_indices  # noqa: E402
from videomae.data.transforms import PretrainTransform  # noqa: E402

SECTION = "Transcoded copies (videomae-transcode)"
FORMS: dict[str, TranscodeOptions | None] = {
    "original (g250)": None,
    "h264, 256 px, keyint 16": TranscodeOptions("h264", 256, 16),
    "h264, 256 px, keyint 16, no B-frames": TranscodeOptions("h264", 256, 16, bframes=0),
    "h264, 256 px, keyint 32": TranscodeOptions("h264", 256, 32),
    "h264, full size, keyint 16": TranscodeOptions("h264", None, 16),
    "jpeg frames, 256 px": TranscodeOptions("frames", 256),
}


def make_copies(sources: list[Path], out: Path, options: TranscodeOptions) -> list[Path]:
    """``videomae-transcode`` copies of ``sources`` under ``out`` (exits on a failure)."""
    targets = []
    for source in sources:
        target = output_path(source, source.parent, out, options)
        _, status, why = transcode_one((str(source), str(target), options))
        if status == "failed":
            sys.exit(f"{source}: {why}")
        targets.append(target)
    return targets


def disk_bytes(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """Make the copies, time the reads, print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4, help="generated Kinetics-like files")
    parser.add_argument("--clips", type=int, default=24, help="clips read per file and form")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sources = generate(DEFAULT_CACHE, KINETICS_LIKE, args.files)
    transform = PretrainTransform(224)
    with tempfile.TemporaryDirectory() as tmp:
        copies: dict[str, list[Path]] = {}
        encode_s: dict[str, float] = {}
        for name, options in FORMS.items():
            if options is None:
                copies[name] = sources
                continue
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            start = time.perf_counter()
            copies[name] = make_copies(sources, out, options)
            encode_s[name] = (time.perf_counter() - start) / len(sources)
        decode = {name: 0.0 for name in FORMS}
        full = {name: 0.0 for name in FORMS}
        rng = np.random.default_rng(0)
        for f in range(len(sources)):
            for _ in range(args.clips):
                seed = int(rng.integers(1 << 31))
                for name in FORMS:  # the forms take turns on the same clip
                    path = copies[name][f]

                    def sampler(length: int, seed: int = seed) -> np.ndarray:
                        return dense_indices(length, 16, 4, np.random.default_rng(seed))

                    start = time.perf_counter()
                    frames = read_frames(path, sampler, num_threads=1)
                    middle = time.perf_counter()
                    transform(frames, np.random.default_rng(seed))
                    end = time.perf_counter()
                    decode[name] += middle - start
                    full[name] += end - start
        n = len(sources) * args.clips
        base = decode["original (g250)"]
        source_bytes = sum(disk_bytes(p) for p in sources)
        lines = [
            f"## {SECTION}",
            "",
            f"`python benchmarks/transcode.py --files {args.files} --clips {args.clips}` at "
            f"{commit()} on {machine()}, "
            f"{torch.get_num_threads()} torch thread, one decoder thread; "
            f"{time.strftime('%Y-%m-%d')}. {len(sources)} Kinetics-like files "
            "(340x256 H.264, 300 frames, 30 fps, key frame every 250). A clip = 16 frames every "
            "4 at a random place (the same clips for every form); clips/s of one process.",
            "",
            "| form | decode clips/s | decode + pretrain transform clips/s | vs original | "
            "disk vs original | encode s/video |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in FORMS:
            size = sum(disk_bytes(p) for p in copies[name]) / source_bytes
            enc = f"{encode_s[name]:.1f}" if name in encode_s else ""
            lines.append(
                f"| {name} | {n / decode[name]:.1f} | {n / full[name]:.1f} | "
                f"{base / decode[name]:.2f}x | {size:.2f}x | {enc} |"
            )
    publish(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
