"""``make demo``: VideoMAE's data efficiency, reproduced at small scale on the CPU.

The paper's claim is that masked pretraining makes a ViT a data-efficient learner. Here: tiny
VideoMAE is pretrained on all the training videos of the generated drift set without their
labels, then fine-tuned on a few labeled videos per class; the same classifier is trained from
scratch on the same videos with the same settings and step budget; both are tested on every view
of the validation videos. For every seed (and every labeled-set size of ``--labeled`` / every
masking ratio of ``--masks``) the demo runs, each as its own ``python train.py`` job on the demo's
generated set (``data=synthetic_demo``):

(a) ``experiment=demo_pretrain``: pretraining with tube masking on every training video, no
    labels (one per seed and masking ratio, shared by every labeled-set size);
(b) ``experiment=demo_finetune model.init_from=<(a)'s last.ckpt> +data.labeled_per_class=K``:
    fine-tuned on K labeled videos per class, drawn with the seed (``data.subset_seed``);
(c) ``experiment=demo_finetune +data.labeled_per_class=K``: the same classifier from scratch on
    the same K videos per class (one per seed and size, shared by every masking ratio);
(d) both tested on every view (2 clips x 3 crops) of the validation videos (``test: true``).

Then it reads each fine-tuning run's ``predictions.csv`` (top-1 / top-5 are computed from it)
and its ``csv/version_0/metrics.csv`` (validation top-1 during fine-tuning), and writes to the
demo folder ``results.md`` (the table: mean ± std over seeds, per seed, the paired gap),
``results.json`` (every number) and ``accuracy_curves.png``; with several sizes
(``--curve``) also ``label_efficiency.png`` (test top-1 against labeled videos per class), with
several masking ratios ``masking_ratio.png``.

Jobs run ``--jobs`` at a time (default: one per core; with a GPU, up to 4 share it), each
single-threaded with its data decoded in-process. A job that fails is reported with its log and
the demo goes on with the others; the exit status is 1 then.

Usage::

    python -m videomae.demo                        # 3 seeds, 5 labeled videos per class
    python -m videomae.demo --curve                # labeled sizes 2, 5, 10, 40 (slower)
    python -m videomae.demo --masks 0.75 0.9 0.95  # the masking-ratio mode
    python -m videomae.demo --seeds 0 --pretrain-epochs 3 --finetune-steps 40  # a quick look
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

from videomae.utils.runs import usable_cores

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
LABELED = 5
"""Labeled training videos per class of the default demo (chosen by the probes in the README)."""
CURVE_SIZES = (2, 5, 10, 40)
"""The labeled-set sizes of ``--curve`` (40: every training video of the demo set)."""
RESERVED = frozenset(
    {
        "experiment",
        "seed",
        "masking",
        "masking.ratio",
        "model.init_from",
        "trainer.max_epochs",
        "trainer.max_steps",
        "trainer.val_check_interval",
        "data.labeled_per_class",
        "data.subset_seed",
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
        seed: the run's ``seed`` (and the draw of its labeled subset).
        mask: the pretraining masking ratio (``None`` for ``scratch``).
        labeled: labeled videos per class of a fine-tuning or scratch run (``None`` for
            ``pretrain``, which sees every training video without labels).
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
    labeled: int | None = None
    after: Job | None = None
    status: str = "pending"
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """A short name for messages: ``finetune labeled=5 mask=0.9 seed=0``."""
        labeled = "" if self.labeled is None else f" labeled={self.labeled}"
        mask = "" if self.mask is None else f" mask={self.mask:g}"
        return f"{self.name}{labeled}{mask} seed={self.seed}"

    @property
    def row(self) -> str:
        """The results row of a fine-tuning or scratch run: ``labeled_5/mask_0.9``."""
        side = "scratch" if self.mask is None else f"mask_{self.mask:g}"
        return f"labeled_{self.labeled}/{side}"


def validation_interval(steps: int) -> int:
    """Validate every this many steps: about five points, the last step among them."""
    return next(n for n in range(max(1, steps // 5), 0, -1) if steps % n == 0)


def plan_jobs(
    out: Path,
    masks: Sequence[float],
    seeds: Sequence[int],
    labeled: Sequence[int] = (LABELED,),
    extra: Sequence[str] = (),
    pretrain_epochs: int | None = None,
    finetune_steps: int | None = None,
) -> list[Job]:
    """The demo's jobs in a good launch order (pretraining first, scratch runs filling in).

    Folders: ``<out>/mask_<m>/seed_<s>/pretrain``, ``<out>/labeled_<k>/mask_<m>/seed_<s>`` and
    ``<out>/labeled_<k>/scratch/seed_<s>``. ``pretrain_epochs`` sets the pretraining's
    ``trainer.max_epochs``, ``finetune_steps`` the fine-tuning budget (``None``: the
    experiments' values); ``extra`` overrides go to every job, last, so they win.
    """
    pretrains: list[Job] = []
    tuned: list[Job] = []
    for mask in masks:
        for seed in seeds:
            run = out / f"mask_{mask:g}" / f"seed_{seed}" / "pretrain"
            pre = Job(
                "pretrain", seed, mask, run, [f"experiment={PRETRAIN}", f"masking.ratio={mask}"]
            )
            pretrains.append(pre)
            ckpt = run / "checkpoints" / "last.ckpt"
            for k in labeled:
                folder = out / f"labeled_{k}" / f"mask_{mask:g}" / f"seed_{seed}"
                overrides = [f"experiment={FINETUNE}", f"model.init_from={ckpt}"]
                tuned.append(Job("finetune", seed, mask, folder, overrides, k, after=pre))
    scratch = [
        Job("scratch", seed, None, out / f"labeled_{k}" / "scratch" / f"seed_{seed}", [], k)
        for k in labeled
        for seed in seeds
    ]
    for job in scratch:
        job.overrides.append(f"experiment={FINETUNE}")
    ordered = pretrains + scratch + tuned
    for job in ordered:
        if job.name == "pretrain" and pretrain_epochs is not None:
            job.overrides.append(f"trainer.max_epochs={pretrain_epochs}")
        if job.name != "pretrain":
            job.overrides += [
                f"+data.labeled_per_class={job.labeled}",
                f"+data.subset_seed={job.seed}",
            ]
            if finetune_steps is not None:
                job.overrides += [
                    f"trainer.max_steps={finetune_steps}",
                    f"trainer.val_check_interval={validation_interval(finetune_steps)}",
                ]
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
    """Group the finished fine-tuning runs into rows ``labeled_<k>/mask_<m>`` and
    ``labeled_<k>/scratch``, each ``{"labeled", "mask", "runs": {seed: RunResult}, "top1",
    "top5"}``."""
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if job.name == "pretrain" or job.status != "done":
            continue
        try:
            result = read_run(job.run_dir)
        except (OSError, ValueError) as error:
            print(f"[demo] cannot read {job.label}: {error}", flush=True)
            job.status = "failed (no results)"
            continue
        row = rows.setdefault(job.row, {"labeled": job.labeled, "mask": job.mask, "runs": {}})
        row["runs"][job.seed] = result
    for row in rows.values():
        runs = list(row["runs"].values())
        row["top1"] = summarize([r.top1 for r in runs])
        row["top5"] = summarize([r.top5 for r in runs])
    return rows


def _order(rows: dict[str, Any]) -> list[str]:
    """Rows by labeled-set size, pretrained (by mask) before scratch."""
    return sorted(
        rows, key=lambda k: (rows[k]["labeled"], rows[k]["mask"] is None, rows[k]["mask"] or 0)
    )


def paired_gap(row: dict[str, Any], scratch: dict[str, Any] | None) -> tuple[str, list[float]]:
    """The mean top-1 gap (points) of ``row`` over scratch on the seeds both finished, as text,
    and the per-seed gaps."""
    common = sorted(set(row["runs"]) & set(scratch["runs"])) if scratch is not None else []
    if not common:
        return "n/a", []
    diffs = [100 * (row["runs"][s].top1 - scratch["runs"][s].top1) for s in common]
    text = f"{float(np.mean(diffs)):+.1f}"
    if scratch is not None and (
        len(common) < len(row["runs"]) or len(common) < len(scratch["runs"])
    ):
        text += f" (seeds {', '.join(map(str, common))})"
    return text, diffs


def markdown_table(rows: dict[str, Any], chance: float) -> str:
    """The results table: per labeled-set size, one row per masking ratio and one for scratch,
    with the paired gap over scratch."""
    lines = [
        "| labeled / class | model | pretraining | seeds | top-1 % (mean ± std) "
        "| top-5 % (mean ± std) | top-1 per seed | gap vs scratch (top-1 points, per seed) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in _order(rows):
        row = rows[key]
        seeds = sorted(row["runs"])
        per_seed = ", ".join(f"{100 * row['runs'][s].top1:.1f}" for s in seeds)
        if row["mask"] is None:
            name, pre, gap = "from scratch", "none", "0"
        else:
            name, pre = "pretrained", f"tube masking {row['mask']:g}"
            text, diffs = paired_gap(row, rows.get(f"labeled_{row['labeled']}/scratch"))
            gap = text + (f" ({', '.join(f'{d:+.1f}' for d in diffs)})" if diffs else "")
        lines.append(
            f"| {row['labeled']} | {name} | {pre} | {len(seeds)} | {_pct(row['top1'])} "
            f"| {_pct(row['top5'])} | {per_seed} | {gap} |"
        )
    lines.append("")
    lines.append(f"Chance: {100 * chance:.1f}% top-1.")
    return "\n".join(lines)


def _figure(size: tuple[float, float], panels: int = 1) -> tuple[Any, Any]:
    """A new matplotlib figure and its axes (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(size[0] * panels, size[1]), squeeze=False)


def _finish(ax: Any, chance: float) -> None:
    """The chance line, the grid and the legend of one panel."""
    ax.axhline(100 * chance, linestyle=":", color="black", label="chance")
    ax.grid(alpha=0.3)
    ax.legend()


def _save(fig: Any, path: Path) -> None:
    """Write ``path`` and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _name(row: dict[str, Any]) -> str:
    return "from scratch" if row["mask"] is None else f"pretrained (mask {row['mask']:g})"


def plot_curves(rows: dict[str, Any], path: Path, chance: float) -> None:
    """Validation top-1 against the fine-tuning step, one panel per labeled-set size: mean
    over seeds, min-max band, per row."""
    sizes = sorted({row["labeled"] for row in rows.values()})
    fig, axes = _figure((5.2, 4.0), len(sizes))
    for ax, size in zip(axes[0], sizes, strict=True):
        for key in (k for k in _order(rows) if rows[k]["labeled"] == size):
            row = rows[key]
            curves = [r.curve for r in row["runs"].values() if r.curve]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            steps = np.array([s for s, _ in curves[0][:length]])
            values = np.array([[v for _, v in c[:length]] for c in curves]) * 100
            style = "--" if row["mask"] is None else "-"
            (line,) = ax.plot(steps, values.mean(0), style, marker="o", label=_name(row))
            ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.15)
        ax.set_xlabel("fine-tuning step")
        ax.set_ylabel("validation top-1 % (one view)")
        ax.set_title(f"{size} labeled videos per class: mean, min-max over seeds", fontsize=9)
        _finish(ax, chance)
    _save(fig, path)


def plot_labeled(rows: dict[str, Any], path: Path, chance: float) -> None:
    """Test top-1 against the labeled videos per class: mean ± std over seeds, each seed's
    value as a dot, pretrained (per mask) and scratch."""
    fig, axes = _figure((6.0, 4.2))
    ax = axes[0][0]
    sides = sorted({row["mask"] for row in rows.values()}, key=lambda m: (m is None, m or 0))
    for offset, mask in enumerate(sides):
        side = sorted(
            (row for row in rows.values() if row["mask"] == mask), key=lambda r: r["labeled"]
        )
        x = np.array([row["labeled"] for row in side], dtype=float)
        y = np.array([100 * row["top1"]["mean"] for row in side])
        err = np.array([100 * row["top1"]["std"] for row in side])
        style = "--" if mask is None else "-"
        line = ax.errorbar(x, y, yerr=err, fmt=style, marker="o", capsize=4, label=_name(side[0]))
        shift = 1.0 + 0.03 * (offset - (len(sides) - 1) / 2)  # keep the dots apart
        for row in side:
            seeds = [100 * r.top1 for r in row["runs"].values()]
            ax.scatter(
                [row["labeled"] * shift] * len(seeds),
                seeds,
                s=12,
                alpha=0.5,
                color=line[0].get_color(),
            )
    ax.set_xscale("log")
    ax.minorticks_off()
    sizes = sorted({row["labeled"] for row in rows.values()})
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.set_xlabel("labeled training videos per class (log scale)")
    ax.set_ylabel("test top-1 % (2 clips x 3 crops)")
    ax.set_title("Label efficiency: mean ± std over seeds, dots: seeds", fontsize=9)
    _finish(ax, chance)
    _save(fig, path)


def plot_masks(rows: dict[str, Any], path: Path, chance: float) -> None:
    """Test top-1 against the masking ratio (mean ± std) at the smallest labeled-set size,
    scratch as a band."""
    size = min(row["labeled"] for row in rows.values())
    masks = sorted(
        (k for k, r in rows.items() if r["mask"] is not None and r["labeled"] == size),
        key=lambda k: rows[k]["mask"],
    )
    x = [rows[k]["mask"] for k in masks]
    y = [100 * rows[k]["top1"]["mean"] for k in masks]
    err = [100 * rows[k]["top1"]["std"] for k in masks]
    fig, axes = _figure((5.6, 4.0))
    ax = axes[0][0]
    ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label="pretrained")
    scratch = rows.get(f"labeled_{size}/scratch")
    if scratch is not None:
        s = scratch["top1"]
        ax.axhline(100 * s["mean"], linestyle="--", color="gray", label="from scratch")
        ax.axhspan(
            100 * (s["mean"] - s["std"]), 100 * (s["mean"] + s["std"]), color="gray", alpha=0.15
        )
    ax.set_xlabel("tube masking ratio of the pretraining")
    ax.set_ylabel("test top-1 % (2 clips x 3 crops)")
    ax.set_title(f"{size} labeled videos per class", fontsize=9)
    _finish(ax, chance)
    _save(fig, path)


# ------------------------------------------------------------------------------- entry
def default_parallel(threads: int) -> int:
    """Jobs at a time: one per ``threads`` cores; with a GPU, up to 4 jobs share it."""
    import torch

    if torch.cuda.is_available():
        return max(1, min(4, usable_cores()))
    return max(1, usable_cores() // threads)


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

    Returns ``{"num_classes", "train_videos", "val_videos", "device"}`` for the table.
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
    import torch

    device = (
        f"a GPU ({torch.cuda.get_device_name(0)})"
        if torch.cuda.is_available()
        else f"{usable_cores()} CPU cores"
    )
    return {
        "num_classes": spec.num_classes,
        "train_videos": spec.num_classes * spec.train_per_class,
        "val_videos": spec.num_classes * spec.val_per_class,
        "device": device,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of ``python -m videomae.demo``."""
    parser = argparse.ArgumentParser(
        prog="python -m videomae.demo",
        description="Pretrained vs from-scratch tiny VideoMAE with few labels on the generated "
        "demo set (the CPU, or the GPU when there is one).",
    )
    parser.add_argument(
        "--masks", type=float, nargs="+", default=[0.9], help="tube masking ratios (default 0.9)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--labeled",
        type=int,
        nargs="+",
        default=None,
        metavar="K",
        help=f"labeled training videos per class of the fine-tuning runs (default {LABELED})",
    )
    parser.add_argument(
        "--curve",
        action="store_true",
        help=f"the label-efficiency curve: --labeled {' '.join(map(str, CURVE_SIZES))}",
    )
    parser.add_argument("--out", type=Path, default=None, help="demo folder (logs/demo/<time>)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="jobs at a time (default: one per --threads cores; with a GPU, up to 4)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=None,
        help="steps of every fine-tuning and scratch run (default: demo_finetune's max_steps)",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a train.py override for every job (repeatable), "
        "e.g. data.synthetic.train_per_class=10; on a GPU e.g. data.num_workers=4",
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
                "--labeled, --pretrain-epochs, --finetune-steps)"
            )
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: repeated seed in {args.seeds}")
    if args.curve and args.labeled is not None:
        parser.error("--curve sets the labeled sizes itself; give --curve or --labeled")
    args.labeled = list(CURVE_SIZES) if args.curve else (args.labeled or [LABELED])
    if len(set(args.labeled)) != len(args.labeled) or min(args.labeled) < 1:
        parser.error(f"--labeled: sizes must be distinct and >= 1, got {args.labeled}")
    for name in ("jobs", "threads", "pretrain_epochs", "finetune_steps"):
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
    parallel = args.jobs or default_parallel(args.threads)
    jobs = plan_jobs(
        out,
        args.masks,
        args.seeds,
        args.labeled,
        args.override,
        args.pretrain_epochs,
        args.finetune_steps,
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
    plan = {"masks": args.masks, "seeds": args.seeds, "labeled": args.labeled}
    failed = write_report(jobs, out, plan, minutes, parallel, info)
    return 1 if failed else 0


def write_report(
    jobs: list[Job],
    out: Path,
    plan: dict[str, list],
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
        f"# VideoMAE demo: pretrained vs from scratch with few labels\n\n"
        f"tiny VideoMAE pretrained on the {info.get('train_videos', '?')} training videos of the "
        f"generated demo set (`data=synthetic_demo`, {info['num_classes']} motion classes) "
        f"without labels, then fine-tuned on K labeled videos per class; the same classifier "
        f"from scratch on the same videos and step budget; tested on {info['val_videos']} "
        f"validation videos, 2 clips x 3 crops each. Seeds {', '.join(map(str, plan['seeds']))}"
        f" (each draws its own labeled videos, the same for both sides); {minutes:.1f} min wall "
        f"with {parallel} job(s) at a time on {info.get('device', f'{usable_cores()} CPU cores')}."
        "\n\n"
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
        "masks": list(plan["masks"]),
        "seeds": list(plan["seeds"]),
        "labeled": list(plan["labeled"]),
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
                "labeled": r["labeled"],
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
        if len(plan["labeled"]) > 1:
            plot_labeled(rows, out / "label_efficiency.png", chance)
        if len(plan["masks"]) > 1:
            plot_masks(rows, out / "masking_ratio.png", chance)
    print("\n" + table + notes, flush=True)
    print(f"\n[demo] {minutes:.1f} min; results in {out}", flush=True)
    return failed


def report_only(out: Path) -> int:
    """Rewrite the table, results.json and plots of a finished demo folder (no training)."""
    path = out / "results.json"
    try:
        record = json.loads(path.read_text())
        plan = {k: record[k] for k in ("masks", "seeds", "labeled")}
        info = {k: record[k] for k in ("num_classes", "val_videos")}
        info |= {k: record[k] for k in ("train_videos", "device") if k in record}
    except (OSError, ValueError) as error:
        raise SystemExit(f"videomae.demo --report: cannot read {path}: {error}") from error
    except KeyError as error:
        raise SystemExit(f"videomae.demo --report: {path} has no {error} entry") from error
    jobs = plan_jobs(out, plan["masks"], plan["seeds"], plan["labeled"])
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
    failed = write_report(jobs, out, plan, minutes, parallel, info)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
