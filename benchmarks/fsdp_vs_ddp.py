"""ViT-L VideoMAE pretraining steps under DDP and under FSDP (trainer=fsdp): speed and memory.

Runs ``train.py`` once per strategy (each in its own process, so peak memory is per strategy) on
random clips of the official shape held in memory (``data=random``: 16 x 224 x 224, no
decoding), tube masking 0.9, bf16, reads the ``perf/*`` metrics of the throughput callback from
the run's metrics.csv, prints one table and writes it as a section of BENCHMARKS.md. Needs
CUDA GPUs (one is enough); not run on CPU machines.

    python benchmarks/fsdp_vs_ddp.py --devices 8 --batch 16 --steps 30
    python benchmarks/fsdp_vs_ddp.py --devices 1 --batch 16 --steps 30
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "ViT-L pretraining: DDP vs FSDP"


DRY_RUN = ["backbone=tiny", "data.num_frames=8", "data.img_size=64", "trainer.precision=32-true"]
"""``--dry-run``: the same command on the CPU with a tiny model (checks the plumbing)."""


def run(strategy: str, args: argparse.Namespace, out: Path) -> dict[str, float]:
    """Train ``args.steps`` steps with ``trainer=<strategy>``; the mean perf metrics after
    warm-up (the first logged window is dropped)."""
    overrides = [
        f"hydra.run.dir={out}",
        "experiment=k400_pretrain",
        "data=random",
        "backbone=vit_l",
        f"trainer={strategy}",
        f"trainer.devices={args.devices}",
        *(DRY_RUN if args.dry_run else []),
        f"+trainer.max_steps={args.steps}",
        "+trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=5",
        f"data.batch_size={args.batch}",
        f"data.train_batches={args.steps}",
        "logger=csv",
        "callbacks.reconstruction=null",
        "callbacks.rich_progress_bar=null",
        "model.optim.warmup_epochs=0",
        "validate=false",
        "extras.print_config=false",
        "model.compile=false",  # both eager (model.compile=auto compiles under DDP only)
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], check=True, env=env)
    (metrics_file,) = out.glob("csv/version_*/metrics.csv")
    with open(metrics_file) as f:
        rows = [r for r in csv.DictReader(f) if r.get("perf/clips_per_sec")]
    rows = rows[1:] or rows
    keys = ("perf/clips_per_sec", "perf/mfu", "perf/peak_mem_gb", "perf/data_wait_frac")
    return {
        k: statistics.mean(float(r[k]) for r in rows if r.get(k))
        for k in keys
        if any(r.get(k) for r in rows)
    }


def main() -> None:
    """Parse the options, run both strategies, print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8, help="GPUs per run")
    parser.add_argument("--batch", type=int, default=16, help="clips per GPU")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument(
        "--dry-run", action="store_true", help="tiny model, one CPU, no FSDP, no BENCHMARKS.md"
    )
    args = parser.parse_args()

    import torch

    if args.dry_run:
        args.devices, args.no_write = 1, True
    elif not torch.cuda.is_available():
        sys.exit("fsdp_vs_ddp.py needs CUDA GPUs (--dry-run checks it on the CPU)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("cpu",) if args.dry_run else ("ddp", "fsdp"):
            results[strategy] = run(strategy, args, Path(tmp) / strategy)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    lines = [
        f"## {SECTION}",
        "",
        f"{args.devices} x {device}, ViT-L (K400 recipe: 16x224x224, tube 0.9, bf16), "
        f"batch {args.batch} per GPU, {args.steps} steps (`python benchmarks/fsdp_vs_ddp.py`). "
        "clips/s over all GPUs; memory: peak allocated per GPU.",
        "",
        "| strategy | clips/s | MFU | peak memory (GB) | data wait |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for strategy, m in results.items():
        lines.append(
            f"| {strategy} | {m.get('perf/clips_per_sec', float('nan')):.1f} "
            f"| {m.get('perf/mfu', float('nan')):.1%} "
            f"| {m.get('perf/peak_mem_gb', float('nan')):.1f} "
            f"| {m.get('perf/data_wait_frac', float('nan')):.1%} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    if not args.no_write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from model_throughput import write_benchmarks_md

        write_benchmarks_md(SECTION, table)


if __name__ == "__main__":
    main()
