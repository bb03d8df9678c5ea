"""Decode only, per backend: decord, PyAV decoding every frame, PyAV skipping unwanted
non-reference frames (what ``data.backend=auto`` does).

On generated Kinetics-like files (340x256 H.264, 300 frames, key frame every 250, x264's default
B-frames), their ``videomae-transcode`` copies with and without B-frames, and SSv2-like files
(426x240 VP9), one process (one thread) reads pretraining clips (16 frames every 4, every 2 for
SSv2-like) at random places, ``num_sample`` 1 and 4 (the four clips' frames in one decode); the
three ways take turns on each clip and must return the same frames. Prints ms per clip and, with
``--write``, puts the table in BENCHMARKS.md with the machine.

    python benchmarks/decode_backends.py --clips 6 --rounds 2 --write
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

from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, SSV2_LIKE, generate  # noqa: E402
from model_throughput import commit, machine, publish  # noqa: E402
from transcode import make_copies  # noqa: E402

from videomae.cli.transcode import TranscodeOptions  # noqa: E402
from videomae.data import decoding  # noqa: E402

SECTION = "Decoding backends, decode only (benchmarks/decode_backends.py)"
WAYS = ("decord", "PyAV, every frame", "PyAV, skipping")


def read(path: Path, positions: np.ndarray, way: str) -> torch.Tensor:
    """The frames at ``positions`` of ``path``, decoded one of the three ways."""
    skips = decoding._SKIPS_NONREF
    if way == "PyAV, every frame":
        decoding._SKIPS_NONREF = frozenset()
    try:
        backend = "decord" if way == "decord" else "pyav"
        return decoding.read_frames(path, lambda n: positions, backend=backend)
    finally:
        decoding._SKIPS_NONREF = skips


def main(argv: list[str] | None = None) -> int:
    """Make the copies, time the three ways, print (and write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4, help="generated files of each kind")
    parser.add_argument("--clips", type=int, default=6, help="clips per file and num_sample")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the clips")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    kinetics = generate(DEFAULT_CACHE, KINETICS_LIKE, args.files)
    with tempfile.TemporaryDirectory() as tmp:
        groups = {
            "Kinetics-like, as they are": (kinetics, 4),
            "their copy (keyint 16, 3 B-frames: the default)": (
                make_copies(kinetics, Path(tmp) / "b3", TranscodeOptions()),
                4,
            ),
            "their copy without B-frames (--bframes 0)": (
                make_copies(kinetics, Path(tmp) / "b0", TranscodeOptions(bframes=0)),
                4,
            ),
            "SSv2-like (VP9), as they are": (generate(DEFAULT_CACHE, SSV2_LIKE, args.files), 2),
        }
        rows = []
        for num_sample in (1, 4):
            for name, (files, rate) in groups.items():
                rng = np.random.default_rng(0)
                plans = []
                for path in files:
                    length = decoding.video_length(path)
                    span = 16 * rate
                    for _ in range(args.clips):
                        starts = rng.integers(0, length - span + 1, size=num_sample)
                        plans.append(
                            (path, np.concatenate([s + np.arange(0, span, rate) for s in starts]))
                        )
                spent = dict.fromkeys(WAYS, 0.0)
                for _ in range(args.rounds):
                    for path, positions in plans:
                        frames = []
                        for way in WAYS:  # the ways take turns on each clip
                            start = time.perf_counter()
                            frames.append(read(path, positions, way))
                            spent[way] += time.perf_counter() - start
                        if not all(torch.equal(frames[0], f) for f in frames[1:]):
                            sys.exit(f"{path}: the ways decoded different frames")
                clips = args.rounds * len(plans) * num_sample
                ms = {way: 1000 * spent[way] / clips for way in WAYS}
                rows.append(
                    f"| {name} | {num_sample} | {ms['decord']:.1f} | {ms['PyAV, every frame']:.1f} "
                    f"| {ms['PyAV, skipping']:.1f} | {ms['decord'] / ms['PyAV, skipping']:.2f}x |"
                )
    lines = [
        f"## {SECTION}",
        "",
        f"`python benchmarks/decode_backends.py --clips {args.clips} --rounds {args.rounds}` at "
        f"{commit()} on {machine()}, one thread; {time.strftime('%Y-%m-%d')}. {args.files} files "
        "of each kind; clips of 16 frames every 4 (every 2 on the SSv2-like files) at random "
        "places, the same for the three ways, which returned the same frames on every clip. ms "
        "of decoding per clip (at num_sample 4: the decode of the four clips' frames, divided by "
        "4); x: decord against PyAV skipping.",
        "",
        "| files | num_sample | decord | PyAV, every frame | PyAV, skipping (auto) | x |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]
    publish(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
