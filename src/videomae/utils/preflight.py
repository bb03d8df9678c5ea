"""A command line's mistakes, told at once: checks that run before Hydra starts the job.

``train.py`` and ``eval.py`` call :func:`preflight` before handing the command line to Hydra.
It composes the config as Hydra will (about a second: Hydra and OmegaConf only, no torch, no
Lightning) and checks what needs no heavy import: overrides of unknown keys (with the closest
key and the line to type), unknown group options, every value :func:`validate_config` can check
without imports (keys read from the targets' sources), the checkpoint (there, and of the run's
kind) and a real data set's folder and lists. A mistake prints one short block and exits with
status 2, before the config tree, the run folder and any work. ``HYDRA_FULL_ERROR=1`` raises it
with its traceback instead.

For ``eval.py`` it first reads what the checkpoint is: without ``experiment=`` on the command
line, the run is composed with the experiment and the model/data overrides the checkpoint was
trained with (with the same experiment, with those overrides); with another one, the checkpoint's
kind and network must be the run's. A checkpoint given to ``train.py`` as ``ckpt_path`` must be of
the run's kind and network too.

Inside the job, :class:`RunGuard` does the same for the mistakes found later (after the heavy
imports: a target's own checks, a list file's contents) and removes the run folder of a run that
failed before doing any work.
"""

from __future__ import annotations

import contextlib
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

from videomae.checkpoints.files import (
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
    """Not one of the other processes of a distributed run (torchrun, Lightning, srun)."""
    return all(os.environ.get(var, "0") == "0" for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def preflight(config_dir: str | Path, config_name: str, args: Sequence[str]) -> list[str]:
    """Check the command line ``args`` of ``train.py`` / ``eval.py`` (``config_name``) and return
    the arguments to run (``eval.py``: completed from the checkpoint). On a mistake: the short
    block and ``SystemExit(2)``.

    Command lines with Hydra flags (``--help``, ``--cfg``, ``-m``, ...), ``hydra.mode=MULTIRUN``
    or an ``hparams_search`` (whose configs make a multirun), and the processes of a DDP run
    other than rank 0, are passed through unchecked (multirun jobs are checked one by one inside
    the job; ``eval.py`` then uses the experiment it is given).
    """
    args = list(args)
    sweeping = any(
        arg.startswith(("-", "hparams_search=")) or arg == "hydra.mode=MULTIRUN" for arg in args
    )
    if sweeping or not _is_rank_zero():
        return args
    evaluating = config_name.startswith("eval")
    try:
        if evaluating:
            args = eval_arguments(args)
        cfg = compose(config_dir, config_name, args)
        check(cfg, training=not evaluating)
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
    if not isinstance(parent, DictConfig):
        top = parent_key.split(".")[0]
        close = difflib.get_close_matches(top, sorted(map(str, cfg)), n=1, cutoff=0.6)
        advice = f"; did you mean {close[0]}?" if close else ""
        return f"{key}: the config has no {parent_key!r} to hold it{advice}"
    present = {str(k) for k in parent}
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
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(
            "no value given for "
            + ", ".join(missing)
            + "; type "
            + " ".join(f"{key}=<value>" for key in missing)
        )
    validate_config(cfg, light=True)
    output_dir = Path(str(cfg.paths.output_dir))
    ckpt_path = cfg.get("ckpt_path")
    ckpt = resolve_ckpt_path(
        None if ckpt_path is None else str(ckpt_path),
        output_dir,
        bool(cfg.get("auto_resume")) and training,
    )
    if ckpt is not None:
        check_checkpoint_fits(ckpt, cfg, training)
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


SHAPE_KEYS = (
    "in_chans",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "qkv_bias",
    "patch_size",
    "tubelet_size",
    "num_classes",
    "use_mean_pooling",
    "use_fc_norm",
    "decoder_embed_dim",
    "decoder_depth",
    "decoder_num_heads",
)
"""Network settings a checkpoint's weights fix (their values must agree to load it)."""


def network_differences(record: dict[str, Any], cfg: DictConfig) -> list[str]:
    """``key: <checkpoint> in the checkpoint, <run> here`` for every :data:`SHAPE_KEYS` entry
    on which the checkpoint's network and ``cfg.model.net`` disagree."""
    net = OmegaConf.select(cfg, "model.net")
    if not isinstance(net, DictConfig):
        return []
    here = OmegaConf.to_container(net, resolve=True)
    stored = dict(record.get("config") or {})
    if record["kind"] == "classifier":
        stored.setdefault("use_fc_norm", True)  # older checkpoints stored it only when false
    return [
        f"{key}: {stored[key]} in the checkpoint, {here[key]} here"
        for key in SHAPE_KEYS
        if key in stored and key in here and stored[key] != here[key]  # type: ignore[operator]
    ]


def _rerun_line(record: dict[str, Any]) -> str:
    """The experiment and the carried overrides a checkpoint was trained with, as arguments."""
    words = [f"experiment={record['experiment']}"] if record.get("experiment") else []
    return " ".join(words + [o for o in record.get("overrides") or [] if _carried(o)])


def check_checkpoint_fits(ckpt: str | Path, cfg: DictConfig, training: bool) -> None:
    """A checkpoint given to a run is of the run's kind and network: ``ckpt_path`` continues a
    run of the same kind (a pretraining checkpoint given to a fine-tuning run: use
    ``model.init_from``), and ``eval.py`` tests a checkpoint with its own network; otherwise a
    :class:`~videomae.errors.CheckpointError` saying what to type."""
    record = read_record(ckpt)
    kind = model_kind(cfg)
    if record is None or kind is None:
        return
    rerun = _rerun_line(record)
    if record["kind"] != kind and not training:
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)}, but this run evaluates a {KIND_WORDS[kind]} "
            "model.\n"
            + (
                f"Leave experiment= out (eval.py reads it from the checkpoint), or pass {rerun}"
                if record.get("experiment")
                else "Pass the experiment it was trained with, e.g. experiment="
                + ("synthetic_finetune" if record["kind"] == "classifier" else "synthetic_pretrain")
            )
        )
    if record["kind"] == "pretrain" and kind != "pretrain":
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)}; ckpt_path resumes a run of the same kind, "
            "and this run fine-tunes.\n"
            f"To fine-tune from its weights, start from them instead: model.init_from={ckpt}"
        )
    if record["kind"] != kind:
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)}; this run pretrains and cannot resume it.\n"
            f"To continue it: python train.py {rerun or 'experiment=<its experiment>'} "
            f"ckpt_path={ckpt}\n"
            f"To evaluate it: python eval.py ckpt_path={ckpt}"
        )
    differences = network_differences(record, cfg)
    if differences:
        what = "continue" if training else "evaluate"
        raise CheckpointError(
            f"ckpt_path: {_described(ckpt, record)}, whose network is not this run's: "
            + "; ".join(differences)
            + f".\nTo {what} it, use the settings it was trained with"
            + (f": {rerun}" if rerun else "")
        )


def _override_key(line: str) -> str:
    return line.lstrip("+~").split("=", 1)[0]


def _carried(line: str) -> bool:
    key = _override_key(line)
    return (
        any(key == group or key.startswith(f"{group}.") for group in CARRIED_GROUPS)
        and key not in NOT_CARRIED
    )


def eval_arguments(args: list[str]) -> list[str]:
    """``eval.py``'s command line completed from its checkpoint: without ``experiment=``, the
    checkpoint's experiment; with none or the same one, the checkpoint's training overrides of
    the model and data (:data:`CARRIED_GROUPS`) that the command line does not set itself
    (a key, or its whole group: ``data=hmdb51`` drops the recorded ``data.*``)."""
    line = next((a for a in reversed(args) if a.startswith("ckpt_path=")), None)
    if line is None:
        return args  # check() says it is required
    ckpt = resolve_ckpt_path(line.split("=", 1)[1], Path.cwd(), False)
    record = read_record(ckpt) if ckpt else None
    if record is None or not record.get("experiment"):
        return args  # not one of ours, or too old to say: evaluated as configured
    given = next((a.split("=", 1)[1] for a in args if a.startswith("experiment=")), None)
    if given is not None and given != record["experiment"]:
        return args  # check_checkpoint_fits compares the kinds and the networks
    given_keys = {_override_key(a) for a in args}
    carried = [
        str(o)
        for o in record.get("overrides") or []
        if _carried(str(o))
        and _override_key(str(o)) not in given_keys
        and _override_key(str(o)).split(".")[0] not in given_keys
    ]
    completed = [
        *([] if given is not None else [f"experiment={record['experiment']}"]),
        *carried,
        *args,
    ]
    added = completed[: len(completed) - len(args)]
    if added:
        print(
            f"eval.py: {_described(ckpt, record)}; evaluating it with {' '.join(added)}",
            flush=True,
        )
    return completed


class RunGuard:
    """Around a single run's job: a :class:`~videomae.errors.UserError` raised inside ends the
    process with the short block and status 2 (no traceback unless ``HYDRA_FULL_ERROR=1``); when
    it came before the run did work (``worked`` stays False: set it once a batch has run or a
    checkpoint was written), the run folder it made is removed if it still holds Hydra's files
    only. A folder that held more than Hydra's files when the run began (a
    resumed run) is kept, and so is the folder of any other failure (its log holds the
    traceback)."""

    def __init__(self, output_dir: str | Path, job_log: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.worked = False
        self.job_log = job_log
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
        user_error = find_user_error(error)
        if user_error is None:
            return False  # a bug or an environment failure: its folder and log stay
        if self.fresh and not self.worked:
            self._remove_folder()
        if full_error():
            return False
        report(user_error)
        raise SystemExit(EXIT_USER_ERROR) from None

    def _remove_folder(self) -> None:
        """Remove the folder when it holds Hydra's files only (nothing else was written)."""
        ours = {*HYDRA_FILES, *([self.job_log] if self.job_log else [])}
        if not self.output_dir.is_dir() or set(os.listdir(self.output_dir)) - ours:
            return
        for name in ours:
            path = self.output_dir / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        with contextlib.suppress(OSError):
            self.output_dir.rmdir()
