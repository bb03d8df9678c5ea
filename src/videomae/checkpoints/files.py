"""Where a run's checkpoints are and what a checkpoint says it is, without importing torch.

Used before any heavy import (:mod:`videomae.utils.preflight`) and by the resume rule of
``videomae.train``:

- :func:`resolve_ckpt_path` (the resume rule) and :func:`find_last_checkpoint`;
- :func:`read_record`: the ``videomae`` entry of a Lightning checkpoint (``kind``: ``pretrain`` or
  ``classifier``, the network's ``config``) and the run that wrote it (``videomae_run``:
  ``experiment`` and the command line's ``overrides``), read from the checkpoint's pickle with
  every class replaced by an inert stand-in: no tensor is loaded and no code of the file runs.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from videomae.errors import CheckpointError

log = logging.getLogger(__name__)

PARTIAL = ".partial"
"""Suffix of a checkpoint being written."""
OLD = ".old"
"""Suffix of the previous checkpoint directory while a new one is moved into place."""
LAST_CKPT = Path("checkpoints") / "last.ckpt"
"""Where a run folder keeps its latest checkpoint (``ModelCheckpoint(save_last=True)``): a file,
or a directory of shards under ``trainer=fsdp``."""
RUN_KEY = "videomae_run"
"""Checkpoint entry naming the run that wrote it: ``{"experiment": ..., "overrides": [...]}``."""

MODULE_KINDS = {
    "videomae.modules.pretrain.PretrainModule": "pretrain",
    "videomae.modules.finetune.FinetuneModule": "classifier",
}
"""``model._target_`` -> the ``kind`` its checkpoints record."""
KIND_WORDS = {"pretrain": "pretraining", "classifier": "fine-tuning"}


def is_sharded_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a sharded checkpoint directory as Lightning's FSDP strategy writes it
    (``torch.distributed.checkpoint``'s ``.metadata`` and shards, plus ``meta.pt``)."""
    path = Path(path)
    return path.is_dir() and (path / "meta.pt").is_file() and (path / ".metadata").is_file()


def is_checkpoint(path: Path) -> bool:
    """A checkpoint file or a sharded checkpoint directory."""
    return path.is_file() or is_sharded_checkpoint(path)


def find_last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run folder's latest complete checkpoint: ``checkpoints/last.ckpt`` (a file, or the
    directory of shards FSDP writes), else ``last.ckpt.old`` (left when a kill interrupted the
    replacement of a sharded ``last.ckpt``), else None."""
    last = Path(run_dir) / LAST_CKPT
    if is_checkpoint(last):
        return last
    old = last.with_name(last.name + OLD)
    if is_checkpoint(old):
        log.warning("%s is missing (its last write was interrupted): using %s", last, old)
        return old
    return None


def resolve_ckpt_path(ckpt_path: str | None, run_dir: str | Path, auto_resume: bool) -> str | None:
    """The checkpoint a run starts from (the resume rule).

    A checkpoint is a file or a sharded checkpoint directory (``trainer=fsdp``).

    - ``ckpt_path`` is a path: that checkpoint (:class:`CheckpointError` naming it if missing).
    - ``ckpt_path == "last"``: the run folder's last checkpoint (:func:`find_last_checkpoint`),
      which must exist. Resume a run by hand with ``ckpt_path=last hydra.run.dir=<its folder>``.
    - ``ckpt_path`` null and ``auto_resume``: the run folder's last checkpoint if there is one
      (a SLURM job requeued after preemption or a time limit restarts in the same folder and
      continues), else None (a new run).
    """
    if ckpt_path is None or str(ckpt_path) == "":
        last = find_last_checkpoint(run_dir) if auto_resume else None
        if last is not None:
            log.info("resuming from %s (auto_resume: the run folder has a last checkpoint)", last)
            return str(last)
        return None
    if str(ckpt_path) == "last":
        last = find_last_checkpoint(run_dir)
        if last is None:
            raise CheckpointError(
                f"ckpt_path=last: no {LAST_CKPT} in the run folder {run_dir}\n"
                "Pass the folder of the run to resume: ckpt_path=last hydra.run.dir=<run folder>, "
                "or a checkpoint: ckpt_path=<run folder>/checkpoints/last.ckpt"
            )
        return str(last)
    path = Path(ckpt_path).expanduser()
    if not is_checkpoint(path):
        what = "not a checkpoint (a directory without meta.pt)" if path.is_dir() else "not found"
        hint = _nearby_checkpoints(path)
        raise CheckpointError(f"ckpt_path: checkpoint {what}: {path}{hint}")
    return str(path)


def _nearby_checkpoints(path: Path) -> str:
    """A line naming the ``.ckpt`` files of the closest existing folder, or ``""``."""
    for folder in (path if path.is_dir() else path.parent, path.parent / "checkpoints"):
        if folder.is_dir():
            found = sorted(p.name for p in folder.iterdir() if p.suffix == ".ckpt")
            if found:
                return f"\nCheckpoints in {folder}: {', '.join(found[:8])}"
    return ""


class _Inert:
    """Stands for any class named in a checkpoint's pickle; takes and keeps whatever it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # a dict subclass's items
        pass

    def append(self, value: Any) -> None:  # a list subclass's items
        pass

    def extend(self, values: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert(*args)


class _Dict(dict):
    """An ``OrderedDict`` of the pickle (a state dict keeps attributes such as ``_metadata``)."""


class _RecordUnpickler(pickle.Unpickler):
    """Reads the structure of a torch checkpoint's pickle: containers and plain values as they
    are, every class and function as :class:`_Inert`, every tensor storage as None."""

    PLAIN: ClassVar[dict[tuple[str, str], type]] = {
        ("collections", "OrderedDict"): _Dict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
        ("builtins", "complex"): complex,
    }

    def find_class(self, module: str, name: str) -> Any:
        return self.PLAIN.get((module, name), _Inert)

    def persistent_load(self, pid: Any) -> None:
        return None


def read_record(path: str | Path) -> dict[str, Any] | None:
    """``{"kind", "config", "class_names"?, "experiment"?, "overrides"?}`` of one of our Lightning
    checkpoints (a file, or a sharded directory's ``meta.pt``), None when ``path`` is not a
    torch zip checkpoint that records them (another format, or a checkpoint made elsewhere)."""
    path = Path(path)
    file = path / "meta.pt" if path.is_dir() else path
    try:
        with zipfile.ZipFile(file) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                return None
            with archive.open(min(names, key=len)) as handle:
                data = _RecordUnpickler(handle).load()
    except Exception:  # not a zip, or a pickle these stand-ins cannot walk: not ours to say
        return None
    if not isinstance(data, dict) or not isinstance(data.get("videomae"), dict):
        return None
    record = dict(data["videomae"])
    run = data.get(RUN_KEY)
    if isinstance(run, dict):
        record.update({k: run[k] for k in ("experiment", "overrides") if k in run})
    if "experiment" not in record:
        record.update(_run_folder_record(path))
    return record if record.get("kind") in KIND_WORDS else None


def _run_folder_record(path: Path) -> dict[str, Any]:
    """``experiment`` and ``overrides`` from the Hydra files of the run folder that holds
    ``<run>/checkpoints/<path>`` (checkpoints written before they were recorded inside)."""
    hydra_yaml = path.parent.parent / ".hydra" / "hydra.yaml"
    if path.parent.name != "checkpoints" or not hydra_yaml.is_file():
        return {}
    from omegaconf import OmegaConf

    try:
        hydra_cfg = OmegaConf.load(hydra_yaml).hydra
        experiment = hydra_cfg.runtime.choices.get("experiment")
        overrides = list(hydra_cfg.overrides.task)
    except Exception:  # an unreadable or foreign hydra.yaml: nothing learned
        return {}
    return {"experiment": experiment, "overrides": overrides} if experiment else {}
