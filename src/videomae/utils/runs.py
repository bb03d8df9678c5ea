"""Names of runs and sweeps, and the rules of hyper-parameter searches.

- :func:`run_name`: ``<experiment>[-<overrides>]`` from Hydra's choices and the job's
  ``override_dirname`` (the keys in ``hydra.job.config.override_dirname.exclude_keys`` left
  out), sanitized and at most :data:`MAX_NAME` characters (a hash of the rest keeps long names
  apart): the W&B run name.
- :func:`sweep_group`: the sweep folder's name in a multirun (every job of one ``-m`` command,
  or of one Optuna search, shares it), else None: the W&B group.
- :func:`metric_direction` / :func:`failed_value`: whether a metric is minimized or maximized
  (``...loss...`` down, ``...acc...`` up) and the value a failed sweep job returns (the worst
  one, so the search goes on and never picks it).
- :func:`register_resolvers`: ``${metric_direction:<name>}`` and ``${sqlite_storage:<folder>}``
  for ``hparams_search`` configs, ``${max_workers:<n>}`` (a fixed cap on loader workers).
- :func:`auto_workers`: the loader workers of ``data.num_workers=auto``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

MAX_NAME = 96
"""Longest run name."""

MINIMIZE_WORDS = ("loss", "err", "perplexity", "mse")
MAXIMIZE_WORDS = ("acc", "top1", "top5", "map", "auc", "f1", "iou", "psnr", "ssim")


def sanitize(text: str, limit: int = MAX_NAME) -> str:
    """``text`` with only ``[A-Za-z0-9._=,+-]`` (``/`` -> ``.``, others -> ``_``), at most
    ``limit`` characters: when longer, cut and ended by 8 hex digits of its hash."""
    clean = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text.replace("/", "."))
    if len(clean) <= limit:
        return clean
    digest = hashlib.sha1(clean.encode()).hexdigest()[:8]
    return f"{clean[: limit - 9]}~{digest}"


def _hydra() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name(cfg: DictConfig) -> str:
    """``<experiment>-<overrides>`` for this job (``<task_name>`` without an experiment)."""
    hydra_cfg = _hydra()
    experiment = None
    overrides = ""
    if hydra_cfg is not None:
        experiment = hydra_cfg.runtime.choices.get("experiment")
        overrides = str(hydra_cfg.job.get("override_dirname") or "")
    base = str(experiment or cfg.get("task_name") or "run")
    return sanitize(f"{base}-{overrides}" if overrides else base)


def sweep_group(cfg: DictConfig) -> str | None:
    """The sweep folder's name when this job is part of a multirun, else None."""
    from hydra.types import RunMode

    hydra_cfg = _hydra()
    if hydra_cfg is None or hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return sanitize(f"{cfg.get('task_name', 'sweep')}-{Path(str(hydra_cfg.sweep.dir)).name}")


def hydra_choices() -> tuple[str | None, list[str]]:
    """This job's ``experiment`` choice and its command-line overrides (``None, []`` outside
    Hydra)."""
    hydra_cfg = _hydra()
    if hydra_cfg is None:
        return None, []
    experiment = hydra_cfg.runtime.choices.get("experiment")
    return (str(experiment) if experiment else None), [str(o) for o in hydra_cfg.overrides.task]


def job_log_name() -> str | None:
    """The file name of this job's log in its run folder (``train.log``), None outside Hydra."""
    hydra_cfg = _hydra()
    return f"{hydra_cfg.job.name}.log" if hydra_cfg is not None else None


def format_metrics(metrics: dict[str, float], digits: int = 4) -> dict[str, float]:
    """``metrics`` sorted by name, each to ``digits`` significant digits, for the log (the
    loggers' files keep full precision): ``0.6000000238`` -> ``0.6``, ``3.4e-07`` stays."""
    return {k: float(f"{v:.{digits}g}") for k, v in sorted(metrics.items())}


def in_multirun() -> bool:
    """Whether this job runs inside a Hydra multirun (sweep)."""
    from hydra.types import RunMode

    hydra_cfg = _hydra()
    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def metric_direction(name: str) -> str:
    """``"minimize"`` or ``"maximize"`` for a metric name (``val/loss``, ``val/acc1``, ...);
    ValueError naming the metric when the name says neither."""
    lowered = str(name).lower()
    for word in MAXIMIZE_WORDS:
        if word in lowered:
            return "maximize"
    for word in MINIMIZE_WORDS:
        if word in lowered:
            return "minimize"
    raise ValueError(
        f"optimized_metric {name!r}: cannot tell whether to minimize or maximize it (names with "
        f"{', '.join(MINIMIZE_WORDS)} are minimized, with {', '.join(MAXIMIZE_WORDS)} maximized); "
        "set hydra.sweeper.direction"
    )


def failed_value(name: str | None) -> float | None:
    """What a failed sweep job returns for metric ``name``: +inf when it is minimized, -inf
    when maximized (the worst value: Optuna records the trial and never prefers it, where NaN
    would make the Optuna sweeper fail), None when nothing is optimized."""
    if not name:
        return None
    return math.inf if metric_direction(name) == "minimize" else -math.inf


def sqlite_storage(folder: str, filename: str = "optuna.db") -> str:
    """``sqlite:///<folder>/<filename>``, making ``folder`` first (the Optuna sweeper opens the
    study before Hydra creates the sweep folder, and sqlite cannot create folders)."""
    path = Path(folder).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / filename}"


def _cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs a cgroup CPU quota allows this process (Docker's ``--cpus``, a Kubernetes limit),
    rounded up; ``None`` where there is none or it cannot be read (v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``)."""
    try:
        fields = (cgroup / "cpu.max").read_text().split()
    except OSError:
        try:
            fields = [
                (cgroup / "cpu" / name).read_text().strip()
                for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            ]
        except OSError:
            return None
    try:
        quota, period = float(fields[0]), float(fields[1])
    except (IndexError, ValueError):  # "max": no quota
        return None
    if quota <= 0 or period <= 0:  # v1's -1: no quota
        return None
    return max(1, math.ceil(quota / period))


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask (not the host's count), or fewer
    where a cgroup CPU quota allows fewer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = cores or os.cpu_count() or 1
    quota = _cpu_quota()
    return min(cores, quota) if quota is not None else cores


def max_workers(limit: int) -> int:
    """``limit``, but no more than the CPU cores this process may use (the loader workers of a
    2-core machine: 2, not 10)."""
    return max(0, min(int(limit), usable_cores()))


AUTO_WORKERS_LIMIT = 16
"""Most loader workers ``data.num_workers=auto`` gives one training process."""


def auto_workers(processes: int = 1, limit: int = AUTO_WORKERS_LIMIT) -> int:
    """Loader workers for one of ``processes`` training processes on this machine: one per core
    of its share, less one core for the process itself, at most ``limit``.

    Its share is the cores it may use (:func:`usable_cores`) divided by ``processes`` (the
    ranks on this node: a restriction such as ``taskset`` or a container's cpuset on the
    launch command holds for all of them), except under SLURM when the process sees no more
    than ``SLURM_CPUS_PER_TASK`` cores: it is then bound to its task's cores, its own. One
    H200 with 16 cores: 15 workers; 8 GPUs sharing 96 cores: 11 each; 2 cores: 1; 1 core: 0
    (load in the process).
    """
    cores = usable_cores()
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    bound = per_task.isdigit() and cores <= int(per_task)
    if processes > 1 and not bound:
        cores //= processes
    return max(0, min(int(limit), cores - 1))


def register_resolvers() -> None:
    """Register ``${metric_direction:NAME}``, ``${sqlite_storage:FOLDER}`` and
    ``${max_workers:N}`` (idempotent)."""
    for name, function in (
        ("metric_direction", metric_direction),
        ("sqlite_storage", sqlite_storage),
        ("max_workers", max_workers),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
