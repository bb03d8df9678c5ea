"""A command line's mistakes, told at once: checks that run before Hydra starts the job.

``train.py`` and ``eval.py`` call :func:`preflight` before handing the command line to Hydra.
It composes the config as Hydra will (about a second: Hydra and OmegaConf only, no torch, no
Lightning) and checks what needs no heavy import: overrides of unknown keys (with the closest
key and the line to type), unknown group options, every value :func:`validate_config` can check
without imports (keys read from the targets' sources), the checkpoint (there, and of the run's
kind) and a real data set's folder and lists. A mistake prints one short block and exits with
status 2, before the config tree, the run folder and any work. ``HYDRA_FULL_ERROR=1`` raises it
with its traceback instead.

For ``eval.py`` it also reads what the checkpoint is: without ``experiment=`` on the command line,
the run is composed with the experiment and the model/data overrides the checkpoint was trained
with; with one, the two must agree.

Inside the job, :class:`RunGuard` does the same for the mistakes found later (after the heavy
imports: a target's own checks, a list file's contents) and removes the run folder of a run that
failed before doing any work.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from videomae.checkpoint_files import (
    KIND_WORDS,
    MODULE_KINDS,
    read_record,
    resolve_ckpt_path,
)
from videomae.errors import (
    CheckpointError,
    ConfigError,
    UserError,
    find_user_error,
    user_message,
)
from videomae.utils.config import compose_run_config, validate_config
from videomae.utils.schemas import static_keys

EXIT_USER_ERROR = 2
"""Exit status of a run stopped by a :class:`~videomae.errors.UserError`."""

CARRIED_GROUPS = ("data", "backbone", "masking", "model", "paths.data_dir")
"""Overrides of the training command that ``eval.py`` repeats (what shapes the model and the
data), unless the eval command sets the same key."""
NOT_CARRIED = ("model.init_from",)

HYDRA_FILES = (".hydra", "config_tree.log")
"""What Hydra and the config tree put in a run folder before any work (plus ``<job>.log``)."""


def full_error() -> bool:
    """Whether the user asked for tracebacks (``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def report(error: UserError) -> None:
    """Print ``error`` as the last block of the output (stderr)."""
    sys.stdout.flush()
    print(f"\nError: {user_message(error)}", file=sys.stderr, flush=True)


def _is_rank_zero() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0"


def preflight(config_dir: str | Path, config_name: str, args: Sequence[str]) -> list[str]:
    """Check the command line ``args`` of ``train.py`` / ``eval.py`` (``config_name``) and return
    the arguments to run (``eval.py``: with the checkpoint's experiment added). On a mistake:
    the short block and ``SystemExit(2)``.

    Command lines with Hydra flags (``--help``, ``--cfg``, ``-m``, ...) or
    ``hydra.mode=MULTIRUN``, and the DDP processes Lightning launches, are passed through
    unchecked (multirun jobs are checked one by one inside the job).
    """
    args = list(args)
    multirun = any(arg.startswith("-") or arg == "hydra.mode=MULTIRUN" for arg in args)
    if multirun or not _is_rank_zero():
        return args
    try:
        cfg = compose(config_dir, config_name, args)
        if config_name.startswith("eval"):
            args, cfg = _eval_command(config_dir, config_name, args, cfg)
        check(cfg, training=not config_name.startswith("eval"))
    except UserError as error:
        if full_error():
            raise
        report(error)
        raise SystemExit(EXIT_USER_ERROR) from None
    except Exception:  # not a mistake these checks know: Hydra's job reports it in full
        if full_error():
            raise
    return args


def compose(config_dir: str | Path, config_name: str, args: Sequence[str]) -> DictConfig:
    """The job's config as Hydra composes it (``paths.output_dir`` = ``hydra.run.dir``); Hydra's
    composition errors as :class:`~videomae.errors.UserError` saying what to type."""
    from hydra.errors import HydraException, MissingConfigException

    try:
        return compose_run_config(config_dir, args, None, config_name)
    except MissingConfigException as error:
        raise UserError(_missing_option(error)) from error
    except HydraException as error:
        message = str(error)
        match = re.match(r"Could not override '([^']+)'\.\nTo append to your config use", message)
        if match:
            raise ConfigError(_unknown_key(config_dir, config_name, args, match[1])) from error
        raise UserError(message.strip()) from error


def _missing_option(error: Any) -> str:
    """``experiment=ssv2_pretrian: no such option; did you mean experiment=ssv2_pretrain?``"""
    missing = str(error.missing_cfg_file or "")
    group, _, name = missing.rpartition("/")
    options = [str(o) for o in (error.options or [])]
    if not group or not options:
        return str(error).strip()
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    advice = f"; did you mean {group}={close[0]}?" if close else ""
    return f"{group}={name}: no such option{advice}\n  options of {group}: {', '.join(options)}"


def _unknown_key(config_dir: str | Path, config_name: str, args: Sequence[str], key: str) -> str:
    """What to say about an override of a key the config does not have: the closest key with
    the line to type, or the ``+`` form when the key is a parameter of the node's target."""
    line = next(a for a in args if a.split("=", 1)[0] == key)
    value = line.split("=", 1)[1] if "=" in line else ""
    parent_key, _, leaf = key.rpartition(".")
    try:
        cfg = compose_run_config(config_dir, [a for a in args if a != line], None, config_name)
    except Exception:  # another mistake in the rest: say what Hydra says of this one
        return f"{key}: no such key in the config; to add it, type +{line}"
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    present = {str(k) for k in parent} if isinstance(parent, DictConfig) else set()
    target = parent.get("_target_") if isinstance(parent, DictConfig) else None
    accepted = static_keys(target) if isinstance(target, str) else None
    prefix = f"{parent_key}." if parent_key else ""
    if accepted is not None and leaf in accepted:
        return f"{key} is not in the config yet; to set it, add a +: +{line}"
    candidates = present | (accepted or set())
    close = difflib.get_close_matches(leaf, sorted(candidates), n=1, cutoff=0.6)
    if close:
        plus = "" if close[0] in present else "+"
        suggested = f"{prefix}{close[0]}"
        return f"{key}: unknown key; did you mean {suggested}? Type: {plus}{suggested}={value}"
    where = f"{parent_key} has" if parent_key else "the config has"
    return f"{key}: unknown key ({where}: {', '.join(sorted(candidates))})"


def check(cfg: DictConfig, training: bool = True) -> None:
    """The light checks of a composed job config: values and keys (:func:`validate_config` with
    ``light=True``), the checkpoint and its kind, a real data set's files."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise CheckpointError("ckpt_path is required: python eval.py ckpt_path=<checkpoint>")
    validate_config(cfg, light=True)
    output_dir = Path(str(cfg.paths.output_dir))
    ckpt_path = cfg.get("ckpt_path")
    ckpt = resolve_ckpt_path(
        None if ckpt_path is None else str(ckpt_path),
        output_dir,
        bool(cfg.get("auto_resume")) and training,
    )
    if ckpt is not None and training:
        check_resume_kind(ckpt, cfg)
    data = cfg.get("data")
    if (
        isinstance(data, DictConfig)
        and data.get("_target_") == "videomae.data.datamodule.VideoDataModule"
        and data.get("synthetic") is None
    ):
        from videomae.data.lists import require_data_set

        keys = ("train_list", "val_list", "test_list", "label_names")
        require_data_set(data.root, {k: data.get(k) for k in keys}, data.get("prepare_hint"))


def model_kind(cfg: DictConfig) -> str | None:
    """``pretrain`` / ``classifier``: what the config's LightningModule trains (None: unknown)."""
    return MODULE_KINDS.get(str(OmegaConf.select(cfg, "model._target_")))


def _described(ckpt: str | Path, record: dict[str, Any]) -> str:
    experiment = record.get("experiment")
    made = f" (trained with experiment={experiment})" if experiment else ""
    return f"{ckpt} is a {KIND_WORDS[record['kind']]} checkpoint{made}"


def check_resume_kind(ckpt: str | Path, cfg: DictConfig) -> None:
    """``ckpt_path`` continues a run of the same kind: a pretraining checkpoint given to a
    fine-tuning run (or the reverse) is refused, saying what to type instead."""
    record = read_record(ckpt)
    kind = model_kind(cfg)
    if record is None or kind is None or record["kind"] == kind:
        return
    if record["kind"] == "pretrain":
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)}; ckpt_path resumes a run of the same kind, "
            "and this run fine-tunes.\n"
            f"To fine-tune from its weights, start from them instead: model.init_from={ckpt}"
        )
    experiment = record.get("experiment") or "<its fine-tuning experiment>"
    raise CheckpointError(
        f"ckpt_path: {_described(ckpt, record)}; this run pretrains and cannot resume it.\n"
        f"To continue it: python train.py experiment={experiment} ckpt_path={ckpt}\n"
        f"To evaluate it: python eval.py ckpt_path={ckpt}"
    )


def _override_key(line: str) -> str:
    return line.lstrip("+~").split("=", 1)[0]


def _carried(line: str) -> bool:
    key = _override_key(line)
    return (
        any(key == group or key.startswith(f"{group}.") for group in CARRIED_GROUPS)
        and key not in NOT_CARRIED
    )


def _eval_command(
    config_dir: str | Path, config_name: str, args: list[str], cfg: DictConfig
) -> tuple[list[str], DictConfig]:
    """``eval.py``'s command line completed from the checkpoint: its experiment and its
    training overrides of the model and data (``CARRIED_GROUPS``) when no ``experiment=`` is
    given; with one, the experiment must train the checkpoint's kind of model."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise CheckpointError("ckpt_path is required: python eval.py ckpt_path=<checkpoint>")
    ckpt = resolve_ckpt_path(str(cfg.ckpt_path), Path(str(cfg.paths.output_dir)), False)
    record = read_record(ckpt) if ckpt else None
    if record is None:  # not one of our Lightning checkpoints: evaluated as configured
        return args, cfg
    kind = model_kind(cfg)
    given = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    if given is not None or not record.get("experiment"):
        if kind is None or kind == record["kind"]:
            return args, cfg
        suggestion = record.get("experiment")
        if given is not None:
            raise CheckpointError(
                f"ckpt_path: {_described(ckpt, record)}, but experiment={given} evaluates a "
                f"{KIND_WORDS[kind]} model.\n"
                + (
                    f"Leave experiment= out (eval.py reads it from the checkpoint), "
                    f"or pass experiment={suggestion}"
                    if suggestion
                    else "Pass the experiment the checkpoint was trained with"
                )
            )
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)} and does not record its experiment; pass "
            "the one it was trained with, e.g. experiment="
            + ("synthetic_finetune" if record["kind"] == "classifier" else "synthetic_pretrain")
        )
    given_keys = {_override_key(a) for a in args}
    carried = [
        str(line)
        for line in record.get("overrides") or []
        if _carried(str(line)) and _override_key(str(line)) not in given_keys
    ]
    completed = [f"experiment={record['experiment']}", *carried, *args]
    print(
        f"eval.py: {_described(ckpt, record)}; evaluating it with "
        + " ".join(completed[: len(carried) + 1]),
        flush=True,
    )
    try:
        return completed, compose(config_dir, config_name, completed)
    except UserError as error:
        raise CheckpointError(
            f"the experiment and overrides recorded in {ckpt} do not compose now: {error}\n"
            "Pass the experiment explicitly: python eval.py experiment=<name> ckpt_path=..."
        ) from error


class RunGuard:
    """Around a single run's job: a :class:`~videomae.errors.UserError` raised inside ends the
    process with the short block and status 2 (no traceback unless ``HYDRA_FULL_ERROR=1``); on
    any failure before the run did work (``worked`` stays False: set it once a batch has run or
    a checkpoint was written), the run folder it made is removed. A folder that held more than
    Hydra's files when the run began (a resumed run) is kept."""

    def __init__(self, output_dir: str | Path, job_log: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.worked = False
        ours = {*HYDRA_FILES, *([job_log] if job_log else [])}
        existing = set(os.listdir(self.output_dir)) if self.output_dir.is_dir() else set()
        self.fresh = not (existing - ours) and _is_rank_zero()

    def __enter__(self) -> RunGuard:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if error is None or not isinstance(error, Exception):
            return False
        if self.fresh and not self.worked:
            shutil.rmtree(self.output_dir, ignore_errors=True)
        user_error = find_user_error(error)
        if user_error is None or full_error():
            return False
        report(user_error)
        raise SystemExit(EXIT_USER_ERROR) from None
