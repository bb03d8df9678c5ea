"""``make demo``: VideoMAE's data-efficiency result, reproduced at small scale on the CPU.

For every seed (and every masking ratio of ``--masks``) the demo runs, each as its own
``python train.py`` job on the demo's generated set (``data=synthetic_demo``):

(a) ``experiment=demo_pretrain``: tiny VideoMAE pretrained with tube masking on the training
    videos, without their labels;
(b) ``experiment=demo_finetune model.init_from=<(a)'s last.ckpt>``: fine-tuned on the labels;
(c) ``experiment=demo_finetune``: the same classifier trained from scratch with the same
    fine-tuning settings and budget (one per seed, shared by every masking ratio);
(d) both tested on every view (2 clips x 3 crops) of the validation videos (``test: true``).

Then it reads each fine-tuning run's ``predictions.csv`` (top-1 / top-5 are computed from it)
and its ``csv/version_0/metrics.csv`` (validation top-1 after each validated epoch), and writes
to the demo folder ``results.md`` (the table), ``results.json`` (every number), and
``accuracy_curves.png``; with several masking ratios also ``masking_ratio.png``.

Jobs run ``--jobs`` at a time (default: one per core), each single-threaded with its data
decoded in-process: the whole demo took 16 minutes on 2 cores (2026-11-24). A job that
fails is reported with its log and the demo goes on with the others; the exit status is 1 then.

Usage::

    python -m videomae.demo                       # 3 seeds, tube masking 0.9
    python -m videomae.demo --masks 0.75 0.9 0.95  # the masking-ratio mode (slower)
    python -m videomae.demo --seeds 0 --pretrain-epochs 3 --finetune-epochs 2  # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Job",
    "RunResult",
    "main",
    "plan_jobs",
    "read_curve",
    "read_predictions",
    "summarize",
]

PRETRAIN = "demo_pretrain"
FINETUNE = "demo_finetune"
RESERVED = frozenset(
    {
        "experiment",
        "seed",
        "masking",
        "masking.ratio",
        "model.init_from",
        "trainer.max_epochs",
        "task_name",
        "auto_resume",
    }
)
"""Override keys the demo sets per job (``--override`` refuses them)."""


# ------------------------------------------------------------------------------- the plan
@dataclass
class Job:
    """One ``python train.py`` run of the demo.

    Attributes:
        name: ``pretrain``, ``finetune`` (from a pretraining run) or ``scratch``.
        seed: the run's ``seed``.
        mask: the pretraining masking ratio (``None`` for ``scratch``).
        run_dir: the run folder (``hydra.run.dir``).
        overrides: the command-line overrides of ``train.py``.
        after: the job whose checkpoint this one starts from, if any.
        status: ``pending``, ``running``, ``done``, ``skipped`` (its ``after`` job did not
            finish) or ``failed (...)``.
        seconds: wall time of the run.
    """

    name: str
    seed: int
    mask: float | None
    run_dir: Path
    overrides: list[str]
    after: Job | None = None
    status: str = "pending"
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """A short name for messages: ``pretrain mask=0.9 seed=0``."""
        mask = "" if self.mask is None else f" mask={self.mask:g}"
        return f"{self.name}{mask} seed={self.seed}"


def plan_jobs(
    out: Path,
    masks: Sequence[float],
    seeds: Sequence[int],
    extra: Sequence[str] = (),
    pretrain_epochs: int | None = None,
    finetune_epochs: int | None = None,
) -> list[Job]:
    """The demo's jobs in a good launch order (pretraining first, scratch runs filling in).

    Folders: ``<out>/mask_<m>/seed_<s>/{pretrain,finetune}`` and ``<out>/scratch/seed_<s>``.
    ``*_epochs`` set ``trainer.max_epochs`` of those jobs (``None``: the experiment's value);
    ``extra`` overrides go to every job, last, so they win.
    """
    jobs: list[Job] = []
    pretrains: list[Job] = []
    for mask in masks:
        for seed in seeds:
            run = out / f"mask_{mask:g}" / f"seed_{seed}"
            pre = Job(
                "pretrain",
                seed,
                mask,
                run / "pretrain",
                [f"experiment={PRETRAIN}", f"masking.ratio={mask}"],
            )
            ckpt = pre.run_dir / "checkpoints" / "last.ckpt"
            fine = Job(
                "finetune",
                seed,
                mask,
                run / "finetune",
                [f"experiment={FINETUNE}", f"model.init_from={ckpt}"],
                after=pre,
            )
            pretrains.append(pre)
            jobs.append(fine)
    scratch = [
        Job("scratch", seed, None, out / "scratch" / f"seed_{seed}", [f"experiment={FINETUNE}"])
        for seed in seeds
    ]
    ordered = pretrains + scratch + jobs
    for job in ordered:
        epochs = pretrain_epochs if job.name == "pretrain" else finetune_epochs
        if epochs is not None:
            job.overrides.append(f"trainer.max_epochs={epochs}")
            if job.name != "pretrain":  # about five points on the curve, the last epoch included
                every = next(n for n in range(max(1, epochs // 5), 0, -1) if epochs % n == 0)
                job.overrides.append(f"trainer.check_val_every_n_epoch={every}")
        job.overrides += [
            f"seed={job.seed}",
            f"hydra.run.dir={job.run_dir}",
            "auto_resume=false",
            f"task_name=demo_{job.name}",
            *extra,
        ]
    return ordered


def _run(job: Job, root: Path, threads: int) -> Job:
    """Run ``job`` as a subprocess (stdout and stderr to ``<run_dir>/demo_job.log``)."""
    if job.after is not None and job.after.status != "done":
        job.status = "skipped"
        return job
    job.run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    command = [sys.executable, str(root / "train.py"), *job.overrides]
    start = time.perf_counter()
    with open(job.run_dir / "demo_job.log", "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        proc = subprocess.run(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    job.seconds = time.perf_counter() - start
    job.status = "done" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    return job


def run_jobs(jobs: list[Job], root: Path, parallel: int, threads: int) -> None:
    """Run ``jobs`` ``parallel`` at a time, each after the job it depends on; print progress."""
    pending = list(jobs)
    running: dict[Future[Job], Job] = {}
    done = 0
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while pending or running:
            # a job is ready once the job it starts from has ended (done, failed or skipped)
            ready = [
                j
                for j in pending
                if j.after is None or j.after.status not in ("pending", "running")
            ]
            while ready and len(running) < parallel:
                job = ready.pop(0)
                pending.remove(job)
                job.status = "running"
                print(f"[demo] start  {job.label}", flush=True)
                running[pool.submit(_run, job, root, threads)] = job
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    future.result()
                except Exception as error:  # the job could not even start: report, go on
                    job.status = f"failed ({type(error).__name__}: {error})"
                done += 1
                where = job.run_dir / "demo_job.log"
                extra = f"; see {where}" if job.status.startswith("failed") else ""
                print(
                    f"[demo] {job.status:<6} {job.label} in {job.seconds:.0f} s "
                    f"({done}/{len(jobs)}){extra}",
                    flush=True,
                )


# ------------------------------------------------------------------------------- results
@dataclass
class RunResult:
    """What one fine-tuning run produced.

    Attributes:
        top1: top-1 accuracy on the test views (from ``predictions.csv``).
        top5: top-5 accuracy (a video counts when its label is among its first five guesses).
        videos: number of tested videos.
        curve: ``(step, val/acc1)`` after each validated epoch.
    """

    top1: float
    top5: float
    videos: int
    curve: list[tuple[int, float]] = field(default_factory=list)


def read_predictions(path: Path) -> tuple[float, float, int]:
    """Top-1, top-5 and video count of a ``predictions.csv`` written by the test loop."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no predictions")
    guesses = sorted(
        (k for k in rows[0] if k.startswith("pred_") and k[5:].isdigit()),
        key=lambda k: int(k[5:]),
    )
    if not guesses:
        raise ValueError(f"{path}: no pred_1.. columns")
    top1 = sum(r["label"] == r[guesses[0]] for r in rows) / len(rows)
    top5 = sum(r["label"] in {r[k] for k in guesses[:5]} for r in rows) / len(rows)
    return top1, top5, len(rows)


def read_curve(path: Path, key: str = "val/acc1") -> list[tuple[int, float]]:
    """``(step, value)`` of ``key`` in a Lightning ``metrics.csv`` (rows without it skipped)."""
    curve = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            value = row.get(key, "")
            if value not in ("", None):
                curve.append((int(float(row["step"])), float(value)))
    return curve


def read_run(run_dir: Path) -> RunResult:
    """The :class:`RunResult` of a finished fine-tuning run folder."""
    top1, top5, videos = read_predictions(run_dir / "predictions.csv")
    metrics = sorted(
        run_dir.glob("csv/version_*/metrics.csv"),
        key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name[8:].isdigit() else -1,
    )
    curve = read_curve(metrics[-1]) if metrics else []
    return RunResult(top1, top5, videos, curve)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max of ``values``."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
        "n": len(array),
    }


def _pct(stats: dict[str, float]) -> str:
    """``mean ± std`` in percent, one decimal."""
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def collect(jobs: list[Job]) -> dict[str, Any]:
    """Group the finished fine-tuning runs into ``{"scratch": ..., "mask_<m>": ...}`` rows."""
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if job.name == "pretrain" or job.status != "done":
            continue
        key = "scratch" if job.mask is None else f"mask_{job.mask:g}"
        try:
            result = read_run(job.run_dir)
        except (OSError, ValueError) as error:
            print(f"[demo] cannot read {job.label}: {error}", flush=True)
            job.status = "failed (no results)"
            continue
        rows.setdefault(key, {"mask": job.mask, "runs": {}})["runs"][job.seed] = result
    for row in rows.values():
        runs = list(row["runs"].values())
        row["top1"] = summarize([r.top1 for r in runs])
        row["top5"] = summarize([r.top5 for r in runs])
    return rows


def markdown_table(rows: dict[str, Any], chance: float) -> str:
    """The results table: one row per masking ratio and one for scratch, with the gap."""
    scratch = rows.get("scratch")
    lines = [
        "| model | pretraining | seeds | top-1 % (mean ± std) | top-5 % (mean ± std) "
        "| top-1 per seed | gap vs scratch (top-1 points) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = sorted((k for k in rows if k != "scratch"), key=lambda k: rows[k]["mask"])
    for key in [*order, "scratch"]:
        if key not in rows:
            continue
        row = rows[key]
        seeds = sorted(row["runs"])
        per_seed = ", ".join(f"{100 * row['runs'][s].top1:.1f}" for s in seeds)
        if key == "scratch":
            name, pre, gap = "from scratch", "none", "0"
        else:
            name, pre = "pretrained", f"tube masking {row['mask']:g}"
            gap = "n/a"
            common = sorted(set(seeds) & set(scratch["runs"])) if scratch is not None else []
            if common:  # paired: the seeds both sides finished
                diffs = [row["runs"][s].top1 - scratch["runs"][s].top1 for s in common]
                gap = f"{100 * float(np.mean(diffs)):+.1f}"
                if len(common) < len(seeds) or len(common) < len(scratch["runs"]):
                    gap += f" (seeds {', '.join(map(str, common))})"
        lines.append(
            f"| {name} | {pre} | {len(seeds)} | {_pct(row['top1'])} | {_pct(row['top5'])} "
            f"| {per_seed} | {gap} |"
        )
    lines.append("")
    lines.append(f"Chance: {100 * chance:.1f}% top-1.")
    return "\n".join(lines)


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    """A new matplotlib figure and axes (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _save(fig: Any, ax: Any, path: Path, chance: float) -> None:
    """Draw the chance line, the grid and the legend, write ``path`` and close ``fig``."""
    import matplotlib.pyplot as plt

    ax.axhline(100 * chance, linestyle=":", color="black", label="chance")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(rows: dict[str, Any], path: Path, chance: float) -> None:
    """Validation top-1 against the training step: mean over seeds, min-max band, per row."""
    fig, ax = _figure((6.4, 4.2))
    for key in sorted(rows, key=lambda k: (k == "scratch", rows[k]["mask"] or 0)):
        row = rows[key]
        curves = [r.curve for r in row["runs"].values() if r.curve]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        steps = np.array([s for s, _ in curves[0][:length]])
        values = np.array([[v for _, v in c[:length]] for c in curves]) * 100
        name = "from scratch" if key == "scratch" else f"pretrained (mask {row['mask']:g})"
        style = "--" if key == "scratch" else "-"
        (line,) = ax.plot(steps, values.mean(0), style, marker="o", label=name)
        ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("validation top-1 % (one view)")
    ax.set_title("Fine-tuning tiny on the demo set: mean and min-max over seeds")
    _save(fig, ax, path, chance)


def plot_masks(rows: dict[str, Any], path: Path, chance: float) -> None:
    """Test top-1 against the masking ratio (mean ± std), scratch as a band."""
    masks = sorted(k for k in rows if k != "scratch")
    x = [rows[k]["mask"] for k in masks]
    y = [100 * rows[k]["top1"]["mean"] for k in masks]
    err = [100 * rows[k]["top1"]["std"] for k in masks]
    fig, ax = _figure((5.6, 4.0))
    ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label="pretrained")
    if "scratch" in rows:
        s = rows["scratch"]["top1"]
        ax.axhline(100 * s["mean"], linestyle="--", color="gray", label="from scratch")
        ax.axhspan(
            100 * (s["mean"] - s["std"]), 100 * (s["mean"] + s["std"]), color="gray", alpha=0.15
        )
    ax.set_xlabel("tube masking ratio of the pretraining")
    ax.set_ylabel("test top-1 % (2 clips x 3 crops)")
    _save(fig, ax, path, chance)


# ------------------------------------------------------------------------------- entry
def _cores() -> int:
    """The cores this process may run on (the affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _repo_root(value: str | None) -> Path:
    """The checkout holding ``train.py`` and ``configs/`` (a clear error otherwise)."""
    root = Path(value) if value else Path(__file__).resolve().parents[2]
    if not (root / "train.py").is_file() or not (root / "configs" / "experiment").is_dir():
        raise SystemExit(
            f"videomae.demo: {root} has no train.py and configs/: run it from a checkout of the "
            "project (or pass --root)"
        )
    return root.resolve()


def check_and_prepare(jobs: list[Job], root: Path) -> dict[str, Any]:
    """Check every job's config before any work, then make the generated set.

    Each job's config is composed as ``train.py`` would, checked (``validate_config``), its
    data module built, and each kind of model (pretraining, classifier) built once, so a bad
    value stops the demo here, naming the key, rather than after the pretraining runs. Paths
    resolve from ``root``, where the jobs run.

    Returns ``{"num_classes", "val_videos"}`` for the table.
    """
    import hydra
    from omegaconf import OmegaConf

    from videomae.data.synthetic import SyntheticSpec
    from videomae.utils.config import compose_run_config, validate_config
    from videomae.utils.env import load_env
    from videomae.utils.runs import register_resolvers

    load_env(root)
    register_resolvers()
    first: tuple[Any, SyntheticSpec] | None = None
    models_built: set[str] = set()
    with contextlib.chdir(root):
        for job in jobs:
            # the checkpoint of model.init_from does not exist yet: the job is checked without it
            overrides = [
                o for o in job.overrides if not o.startswith(("hydra.", "model.init_from="))
            ]
            try:
                cfg = compose_run_config(root / "configs", overrides, job.run_dir)
                validate_config(cfg)
                if cfg.data.get("synthetic") is None:
                    raise ValueError("data.synthetic is null: the demo runs on a generated set")
                try:
                    spec = SyntheticSpec(**OmegaConf.to_container(cfg.data.synthetic, resolve=True))
                except (TypeError, ValueError) as error:
                    raise ValueError(f"data.synthetic: {error}") from error
                datamodule = hydra.utils.instantiate(cfg.data)
                kind = "pretrain" if job.name == "pretrain" else "classifier"
                if kind not in models_built:
                    hydra.utils.instantiate(cfg.model)
                    models_built.add(kind)
            except Exception as error:
                raise SystemExit(
                    f"videomae.demo: the config of {job.label} is bad: {error}"
                ) from error
            if first is None:
                first = (datamodule, spec)
            elif (spec, datamodule.root) != (first[1], first[0].root):
                raise SystemExit(
                    f"videomae.demo: {job.label} does not use the generated set of the other "
                    "jobs (data.root / data.synthetic differ)"
                )
        assert first is not None
        datamodule, spec = first
        print(f"[demo] generated set: {datamodule.root}", flush=True)
        datamodule.prepare_data()
    return {"num_classes": spec.num_classes, "val_videos": spec.num_classes * spec.val_per_class}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of ``python -m videomae.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m videomae.demo",
        description="Pretrained vs from-scratch tiny VideoMAE on the generated demo set (CPU).",
    )
    parser.add_argument(
        "--masks", type=float, nargs="+", default=[0.9], help="tube masking ratios (default 0.9)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="demo folder (logs/demo/<time>)")
    parser.add_argument(
        "--jobs", type=int, default=None, help="jobs at a time (default: the number of cores)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a train.py override for every job (repeatable), "
        "e.g. data.synthetic.train_per_class=10",
    )
    parser.add_argument("--root", default=None, help="the project checkout (default: this one)")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="only rewrite the table and plots of the finished demo folder DIR (other options "
        "are ignored)",
    )
    args = parser.parse_args(argv)
    for mask in args.masks:
        if not 0.0 < mask < 1.0:
            parser.error(f"--masks: every ratio must be in (0, 1), got {mask}")
    if len({f"{m:g}" for m in args.masks}) != len(args.masks):
        parser.error(f"--masks: repeated ratio in {args.masks}")
    for override in args.override:
        key = override.split("=", 1)[0].lstrip("+~")
        if "=" not in override or key in RESERVED or key.startswith("hydra."):
            parser.error(
                f"--override {override!r}: expected KEY=VALUE with a key the demo does not set "
                f"itself ({', '.join(sorted(RESERVED))}, hydra.*; use --seeds, --masks, --out, "
                "--pretrain-epochs, --finetune-epochs)"
            )
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: repeated seed in {args.seeds}")
    for name in ("jobs", "threads", "pretrain_epochs", "finetune_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; print the table; return 0, or 1 when a job failed."""
    args = parse_args(argv)
    if args.report is not None:  # the other options do not apply to a finished folder
        return report_only(args.report.resolve())
    root = _repo_root(args.root)
    out = args.out or root / "logs" / "demo" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = out.resolve()
    parallel = args.jobs or max(1, _cores() // args.threads)
    jobs = plan_jobs(
        out, args.masks, args.seeds, args.override, args.pretrain_epochs, args.finetune_epochs
    )
    start = time.perf_counter()
    info = check_and_prepare(jobs, root)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"[demo] {len(jobs)} jobs, {parallel} at a time, {args.threads} thread(s) each; "
        f"folder {out}",
        flush=True,
    )
    run_jobs(jobs, root, parallel, args.threads)
    minutes = (time.perf_counter() - start) / 60
    failed = write_report(jobs, out, args.masks, args.seeds, minutes, parallel, info)
    return 1 if failed else 0


def write_report(
    jobs: list[Job],
    out: Path,
    masks: Sequence[float],
    seeds: Sequence[int],
    minutes: float,
    parallel: int,
    info: dict[str, Any],
) -> list[Job]:
    """Read the runs of ``jobs``; write results.md, results.json and the plots; print the table.

    Returns the jobs that did not finish (or whose files could not be read).
    """
    rows = collect(jobs)
    chance = 1.0 / info["num_classes"]
    table = markdown_table(rows, chance)
    failed = [j for j in jobs if j.status != "done"]
    header = (
        f"# VideoMAE demo: pretrained vs from scratch\n\n"
        f"tiny VideoMAE on the generated demo set (`data=synthetic_demo`, {info['num_classes']} "
        f"motion classes, {info['val_videos']} test videos, 2 clips x 3 crops each); seeds "
        f"{', '.join(map(str, seeds))}; {minutes:.1f} min wall with {parallel} job(s) at a "
        f"time on {_cores()} cores.\n\n"
    )
    notes = ""
    if failed:
        notes = "\n\nFailed or skipped jobs (not in the table): " + ", ".join(
            f"{j.label} ({j.status})" for j in failed
        )
    (out / "results.md").write_text(header + table + notes + "\n")
    record = {
        "minutes": minutes,
        "parallel": parallel,
        "chance": chance,
        **info,
        "masks": list(masks),
        "seeds": list(seeds),
        "jobs": [
            {
                "job": j.label,
                "status": j.status,
                "seconds": round(j.seconds, 1),
                "run_dir": str(j.run_dir),
            }
            for j in jobs
        ],
        "rows": {
            k: {
                "mask": r["mask"],
                "top1": r["top1"],
                "top5": r["top5"],
                "runs": {
                    str(s): {"top1": v.top1, "top5": v.top5, "videos": v.videos, "curve": v.curve}
                    for s, v in r["runs"].items()
                },
            }
            for k, r in rows.items()
        },
    }
    (out / "results.json").write_text(json.dumps(record, indent=2))
    if rows:
        plot_curves(rows, out / "accuracy_curves.png", chance)
        if len(masks) > 1:
            plot_masks(rows, out / "masking_ratio.png", chance)
    print("\n" + table + notes, flush=True)
    print(f"\n[demo] {minutes:.1f} min; results in {out}", flush=True)
    return failed


def report_only(out: Path) -> int:
    """Rewrite the table, results.json and plots of a finished demo folder (no training)."""
    path = out / "results.json"
    try:
        record = json.loads(path.read_text())
        masks, seeds = record["masks"], record["seeds"]
        info = {"num_classes": record["num_classes"], "val_videos": record["val_videos"]}
    except (OSError, ValueError) as error:
        raise SystemExit(f"videomae.demo --report: cannot read {path}: {error}") from error
    except KeyError as error:
        raise SystemExit(f"videomae.demo --report: {path} has no {error} entry") from error
    jobs = plan_jobs(out, masks, seeds)
    previous = {j.get("job"): j for j in record.get("jobs", [])}
    for job in jobs:
        job.seconds = previous.get(job.label, {}).get("seconds", 0.0)
        finished = (
            job.run_dir / "checkpoints" / "last.ckpt"
            if job.name == "pretrain"
            else job.run_dir / "predictions.csv"
        )
        job.status = "done" if finished.is_file() else f"missing ({finished.name})"
    minutes, parallel = record.get("minutes", 0.0), record.get("parallel", 0)
    failed = write_report(jobs, out, masks, seeds, minutes, parallel, info)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
