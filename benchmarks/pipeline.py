"""The data path from file to optimizer step, in one run and one table.

On generated Kinetics-like files (340x256 H.264, 300 frames, a key frame every 250; dense
sampling, 16 frames every 4) and SSv2-like files (426x240 VP9 .webm, 50 frames; segment
sampling, 16 segments), the same files as ``benchmarks/data_throughput.py``:

1. decode only: :func:`videomae.data.decoding.read_frames` of one training clip's frames, one
   thread, no augmentation: clips/s of one core;
2. the training loader alone (``VideoDataModule``, pretraining transform, 224 px) with
   ``--workers`` workers, timed after its prefetch queue has drained, for each path: the files
   as they are (``data.backend=auto``), their ``videomae-transcode`` copy, the copy at
   num_sample 4, and ``data.backend=nvdec`` on the files as they are and on the copy at
   num_sample 4 (on a machine with CUDA);
3. the model step alone on in-memory clips (``benchmarks/model_throughput.py``'s ``ours``);
4. ``train.py`` end to end (``experiment=k400_pretrain`` on the Kinetics-like copy, num_sample 4)
   over ``--steps`` steps: clips/s and the data-wait fraction (``ThroughputMonitor``) of the
   logged windows after the first third. With ``--baseline DIR`` (an older checkout, e.g. a
   ``git worktree``): this checkout's and the baseline's ``train.py``, taking turns, on the
   files as they are and on the copy (this checkout's), in one run.

Rows 2 and 4 are also given as a fraction of row 3 (what the data path lets the model step do).
With ``--finetune``, only row 5 (its own section): ``train.py`` fine-tuning
(``experiment=k400_finetune``, num_sample 2) on the Kinetics-like copy with RandAugment and the
flip in the workers, then on the device (``data.rand_augment_on=device``): clips/s and data wait.

    python benchmarks/pipeline.py --write          # CPU-sized: tiny, fp32, 1 worker
    python benchmarks/pipeline.py --gpu --write    # ViT-B, bf16, 15 workers, batch 32
    python benchmarks/pipeline.py --gpu --compile  # the model step and train.py compiled
    python benchmarks/pipeline.py --img-size 64 --baseline /tmp/old  # train.py against old
    python benchmarks/pipeline.py --gpu --finetune --steps 150  # RandAugment: workers or device

Rows 3 and 4 run the same model, both eager or (``--compile``) both compiled.
"""

from __future__ import annotations

import argparse
import csv
import glob
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, SSV2_LIKE, ClipKind, generate  # noqa: E402
from loader_workers import loader_rate  # noqa: E402
from model_throughput import commit, machine, publish, run_isolated, src_env  # noqa: E402

from videomae.cli.transcode import main as transcode  # noqa: E402
from videomae.data.decoding import read_frames  # noqa: E402
from videomae.data.sampling import dense_indices, segment_indices  # noqa: E402

SECTION = "The data path end to end (benchmarks/pipeline.py)"
SECTION_FINETUNE = "Fine-tuning end to end: RandAugment in the workers or on the device"
KINDS = {"Kinetics-like": (KINETICS_LIKE, "dense"), "SSv2-like": (SSV2_LIKE, "segment")}


def decode_rate(paths: list[Path], sampling: str, clips: int) -> float:
    """Clips/s of decoding one training clip (16 frames) per item with one thread."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    def pick(length: int) -> np.ndarray:
        if sampling == "dense":
            return dense_indices(length, 16, 4, rng)
        return segment_indices(length, 16, rng)

    start = time.perf_counter()
    for i in range(clips):
        read_frames(paths[i % len(paths)], pick)
    return clips / (time.perf_counter() - start)


def prepare(tmp: Path, kind: ClipKind, files: int, repeats: int) -> tuple[Path, Path]:
    """A folder listing the generated files of ``kind`` (``list.csv``) and its transcoded copy."""
    paths = generate(DEFAULT_CACHE, kind, files)
    original = tmp / kind.name
    original.mkdir()
    for path in paths:
        (original / path.name).symlink_to(path)
    (original / "list.csv").write_text("".join(f"{p.name} 0\n" for p in paths) * repeats)
    fast = tmp / f"{kind.name}_fast"
    argv = [str(original / "list.csv"), "--root", str(original), "--out", str(fast)]
    if transcode(argv) != 0:
        sys.exit(f"transcoding the {kind.name} files failed")
    return original, fast


def train_rate(
    root: Path,
    args: argparse.Namespace,
    out: Path,
    checkout: Path = ROOT,
    experiment: str = "k400_pretrain",
    num_sample: int = 4,
    extra: Sequence[str] = (),
) -> tuple[float, float, int]:
    """``train.py`` of ``checkout`` (its ``src`` imported) on ``root``'s list: mean clips/s and
    data-wait fraction after the first third of the logged windows, and the number of
    windows."""
    model = (
        ["backbone=vit_b", "trainer=gpu"]
        if args.gpu
        else ["backbone=tiny", "trainer=cpu", f"data.img_size={args.img_size}"]
    )
    command = [
        sys.executable, str(checkout / "train.py"), f"experiment={experiment}", *model,
        "data=custom", f"data.root={root}", "data.train_list=list.csv", "data.val_list=list.csv",
        "data.num_classes=2", f"data.num_sample={num_sample}",
        f"data.batch_size={args.batch // num_sample}",
        f"data.num_workers={args.workers}", f"+trainer.max_steps={args.steps}",
        "validate=false", "+trainer.limit_val_batches=0", "model.optim.warmup_epochs=0",
        "callbacks.reconstruction=null", "callbacks.rich_progress_bar=null", "logger=csv",
        "trainer.log_every_n_steps=10", "extras.print_config=false", f"hydra.run.dir={out}",
        "auto_resume=false", f"model.compile={str(args.compile).lower()}", *extra,
    ]  # fmt: skip
    env = src_env(checkout / "src")
    with open(out.parent / "train.log", "w") as log:
        subprocess.run(
            command, cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT, check=True
        )
    rows = [
        row
        for name in glob.glob(str(out / "csv" / "version_*" / "metrics.csv"))
        for row in csv.DictReader(Path(name).read_text().splitlines())
        if row.get("perf/clips_per_sec")
    ]
    rows = rows[len(rows) // 3 :] or rows
    mean = lambda key: sum(float(r[key]) for r in rows) / max(1, len(rows))  # noqa: E731
    return mean("perf/clips_per_sec"), mean("perf/data_wait_frac"), len(rows)


def main(argv: list[str] | None = None) -> int:
    """Measure every row; print the table and, with ``--write``, put it in BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="ViT-B, bf16, GPU trainer")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model step and train.py's net"
    )
    parser.add_argument("--workers", type=int, default=None, help="loader workers (1; GPU 15)")
    parser.add_argument("--batch", type=int, default=None, help="clips per step (8; GPU 32)")
    parser.add_argument("--steps", type=int, default=200, help="train.py steps")
    parser.add_argument("--batches", type=int, default=10, help="timed loader batches")
    parser.add_argument("--decode-clips", type=int, default=40, help="clips decoded per kind")
    parser.add_argument("--files", type=int, default=4, help="generated files per kind")
    parser.add_argument("--img-size", type=int, default=224, help="model input on the CPU")
    parser.add_argument(
        "--baseline", type=Path, help="an older checkout (git worktree): its train.py too, in row 4"
    )
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="only row 5: fine-tuning end to end, RandAugment in the workers and on the device",
    )
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.workers = args.workers or (15 if args.gpu else 1)
    args.batch = args.batch or (32 if args.gpu else 8)
    nvdec = torch.cuda.is_available()
    rows: list[tuple[str, str, float, str]] = []  # (row, files, clips/s, note)
    if args.finetune:
        return finetune_rows(args, argv)

    step = run_isolated({
        "variant": "ours", "size": "vit_b" if args.gpu else "tiny",
        "device": "cuda" if args.gpu else "cpu", "num_frames": 16,
        "img_size": 224 if args.gpu else args.img_size, "ratio": 0.9,
        "precision": "bf16" if args.gpu else "fp32", "attention": "auto", "batch": args.batch,
        "steps": 10 if args.gpu else 3, "warmup": (3 if args.gpu else 1) + 2 * args.compile,
        "threads": 2, "compile": args.compile,
    })  # fmt: skip
    model_rate = step["clips_per_s"]

    with tempfile.TemporaryDirectory() as tmp:
        needed = (args.workers * 2 + 1 + args.batches) * args.batch
        for label, (kind, sampling) in KINDS.items():
            paths = generate(DEFAULT_CACHE, kind, args.files)
            rows.append(
                (
                    "1. decode only, one core",
                    label,
                    decode_rate(paths, sampling, args.decode_clips),
                    "",
                )
            )
            original, fast = prepare(Path(tmp), kind, args.files, max(16, -(-needed // args.files)))
            paths_2 = [
                ("files as they are", original, 1, "auto"),
                ("transcoded copy", fast, 1, "auto"),
                ("transcoded copy, num_sample 4", fast, 4, "auto"),
            ]
            if nvdec:
                paths_2.append(("NVDEC (data.backend=nvdec)", original, 1, "nvdec"))
                paths_2.append(("NVDEC, transcoded copy, num_sample 4", fast, 4, "nvdec"))
            for name, root, ns, backend in paths_2:
                rate = loader_rate(
                    root, args.workers, ns, max(1, args.batch // ns), args.batches, backend,
                    sampling=sampling,
                )  # fmt: skip
                workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
                note = f"{rate / model_rate:.2f}x the model step"
                rows.append((f"2. loader, {workers}: {name}", label, rate, note))
        rows.append(("3. model step alone (in-memory clips)", "-", model_rate,
                     f"{step['step_ms']:.0f} ms a step of {args.batch}"))  # fmt: skip
        runs = [("", Path(tmp) / f"{KINETICS_LIKE.name}_fast", ROOT)]
        if args.baseline:  # both checkouts on the same files, taking turns
            original = Path(tmp) / KINETICS_LIKE.name
            runs = [
                (f", {files}, {who}", root, checkout)
                for files, root in (("as they are", original), ("transcoded copy", runs[0][1]))
                for who, checkout in (("this checkout", ROOT), ("baseline", args.baseline))
            ]
        for i, (what, root, checkout) in enumerate(runs):
            out = Path(tmp) / f"e2e_{i}"
            rate, wait, windows = train_rate(root, args, out, checkout)
            rows.append((f"4. train.py, {args.steps} steps, num_sample 4{what}", "Kinetics-like",
                         rate, f"{rate / model_rate:.2f}x the model step; data wait {wait:.1%} "
                         f"({windows} windows after the first third)"))  # fmt: skip

    setup = (
        f"Model: {_model(args)}, tube 0.9, {args.batch} clips a step; loader at 224 px, "
        f"pretraining transform, {args.batches} batches timed after the prefetch queue drained."
    )
    return _publish(SECTION, argv, args, setup, rows)


def _publish(
    section: str,
    argv: list[str] | None,
    args: argparse.Namespace,
    setup: str,
    rows: list[tuple[str, str, float, str]],
) -> int:
    """Print the table of ``rows`` (row, files, clips/s, note) under the command, the machine
    and ``setup``; with ``--write`` put it in BENCHMARKS.md as ``section``."""
    lines = [
        f"## {section}",
        "",
        f"`python benchmarks/pipeline.py {' '.join(argv or sys.argv[1:])}` at {commit()} on "
        f"{machine()}, {time.strftime('%Y-%m-%d')}. {setup}",
        "",
        "| row | files | clips/s | note |",
        "| --- | --- | ---: | --- |",
        *(f"| {row} | {files} | {rate:.1f} | {note} |" for row, files, rate, note in rows),
    ]
    publish(section, lines, args.write)
    return 0


def _model(args: argparse.Namespace) -> str:
    """The model of the table's header."""
    model = "ViT-B, bf16, 16x224" if args.gpu else f"tiny, fp32, 16x{args.img_size}"
    return model + (", compiled (row 3 and train.py)" if args.compile else ", eager")


def finetune_rows(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Row 5 alone: ``train.py`` fine-tuning (``experiment=k400_finetune``, num_sample 2) on the
    Kinetics-like copy with RandAugment and the flip in the workers, then on the device
    (``data.rand_augment_on``), one after the other; its own section of BENCHMARKS.md."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        needed = (args.workers * 2 + 1) * args.batch + args.steps * args.batch
        _, fast = prepare(Path(tmp), KINETICS_LIKE, args.files, max(16, -(-needed // args.files)))
        for i, where in enumerate(("workers", "device")):
            rate, wait, windows = train_rate(
                fast, args, Path(tmp) / f"ft_{i}", experiment="k400_finetune", num_sample=2,
                extra=["test=false", f"data.rand_augment_on={where}"],
            )  # fmt: skip
            place = "in the workers" if where == "workers" else "on the device"
            rows.append((
                f"5. train.py fine-tuning, {args.steps} steps, num_sample 2, transcoded copy, "
                f"RandAugment {place}", "Kinetics-like", rate,
                f"data wait {wait:.1%} ({windows} windows after the first third)",
            ))  # fmt: skip
    setup = (
        f"Model: {_model(args)}, {args.batch} clips a step, {args.workers} loader "
        f"worker{'s' if args.workers > 1 else ''}; random resized crop, RandAugment "
        "rand-m7-n4-mstd0.5-inc1, random erasing 0.25, mixup."
    )
    return _publish(SECTION_FINETUNE, argv, args, setup, rows)


if __name__ == "__main__":
    sys.exit(main())
