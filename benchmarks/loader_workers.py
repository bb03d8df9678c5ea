"""The training loader alone with N workers, measured after its prefetch queue has drained.

Builds the real ``VideoDataModule`` (pretraining transform, 16 frames every 4 at 224 px) on a
list of Kinetics-like files (generated as ``benchmarks/data_throughput.py`` does, each listed
often enough that one epoch holds every timed batch), and with ``--fast`` on its
``videomae-transcode`` copy, and iterates the train loader with nothing consuming the batches
but a copy to the device (pinned memory on a GPU). The first ``workers x prefetch + 1`` batches
fill the queue and are not timed; the next ``--batches`` are. Prints clips/s per worker count
(and per form); ``--write`` puts the table in BENCHMARKS.md with the machine.

    python benchmarks/loader_workers.py --workers 1 2 --num-sample 1 4 --fast
    python benchmarks/loader_workers.py --workers 15 --num-sample 4 --fast --batches 60  # a GPU box
    python benchmarks/loader_workers.py --workers 15 --num-sample 4 --backends auto nvdec
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, generate  # noqa: E402
from model_throughput import commit, machine, publish  # noqa: E402

from videomae.cli.transcode import main as transcode  # noqa: E402
from videomae.data.datamodule import VideoDataModule  # noqa: E402

SECTION = "Training loader with N workers (after the prefetch queue drains)"
PREFETCH = 2  # torch DataLoader's default prefetch_factor


def loader_rate(
    root: Path,
    workers: int,
    num_sample: int,
    batch: int,
    batches: int,
    backend: str = "auto",
    **data: Any,
) -> float:
    """Clips/s of the train loader over ``batches`` batches after the queue has filled
    (``data``: more ``VideoDataModule`` arguments, e.g. ``sampling="segment"``)."""
    dm = VideoDataModule(**{
        "root": str(root), "train_list": "list.csv", "val_list": "list.csv", "num_classes": 1,
        "batch_size": batch, "num_workers": workers, "num_sample": num_sample, "flip": False,
        "pin_memory": torch.cuda.is_available(), "persistent_workers": False, "backend": backend,
        **data,
    })  # fmt: skip
    dm.setup("fit")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    iterator = iter(dm.train_dataloader())
    for _ in range(workers * PREFETCH + 1):  # fill the queue; not timed
        next(iterator)
    clips = 0
    start = time.perf_counter()
    for _ in range(batches):
        video = next(iterator)["video"].to(device, non_blocking=True)
        clips += video.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clips / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Measure every (form, workers, num_sample); print and optionally write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--num-sample", type=int, nargs="+", default=[1, 4], help="clips/video")
    parser.add_argument("--batch", type=int, default=8, help="videos per batch")
    parser.add_argument("--batches", type=int, default=20, help="timed batches")
    parser.add_argument("--files", type=int, default=4, help="generated Kinetics-like files")
    parser.add_argument("--fast", action="store_true", help="also the videomae-transcode copy")
    parser.add_argument(
        "--backends", nargs="+", default=["auto"], help="data.backend values (e.g. auto nvdec)"
    )
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    sources = generate(DEFAULT_CACHE, KINETICS_LIKE, args.files)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp) / "orig"
        original.mkdir()
        for path in sources:
            (original / path.name).symlink_to(path)
        needed = (max(args.workers) * PREFETCH + 1 + args.batches) * args.batch
        repeats = max(16, -(-needed // len(sources)))  # one epoch holds every timed batch
        (original / "list.csv").write_text("".join(f"{p.name} 0\n" for p in sources) * repeats)
        forms = {"original (key frame every 250)": original}
        if args.fast:
            fast = Path(tmp) / "fast"
            argv_t = [str(original / "list.csv"), "--root", str(original), "--out", str(fast)]
            if transcode(argv_t) != 0:
                sys.exit("transcoding the benchmark files failed")
            forms["transcoded copy (h264, keyint 16)"] = fast
        for (form, root), backend in itertools.product(forms.items(), args.backends):
            for ns in args.num_sample:
                for workers in args.workers:
                    rate = loader_rate(root, workers, ns, args.batch, args.batches, backend)
                    rows.append((form, backend, ns, workers, rate))
                    what = f"{form}, {backend}, num_sample {ns}, {workers} workers"
                    print(f"{what}: {rate:.1f} clips/s")
    lines = [
        f"## {SECTION}",
        "",
        f"`python benchmarks/loader_workers.py {' '.join(argv or sys.argv[1:])}` at {commit()} "
        f"on {machine()}, {time.strftime('%Y-%m-%d')}. The pretraining train loader "
        f"(`VideoDataModule`, 16 frames every 4, 224 px, batches of {args.batch} videos x "
        f"num_sample clips) over {len(sources)} Kinetics-like files (340x256 H.264, 300 frames, "
        f"each listed {repeats} times); {args.batches} batches timed after the prefetch queue "
        "filled; uint8 batches copied to the device (pinned on a GPU).",
        "",
        "| files | data.backend | num_sample | workers | clips/s | per worker |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {form} | {backend} | {ns} | {w} | {rate:.1f} | {rate / w:.1f} |"
        for form, backend, ns, w, rate in rows
    ]
    publish(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
