"""Load and save VideoMAE weights in every format the project meets.

:func:`load` reads, detecting the format:

- an official VideoMAE / VideoMAE V2 checkpoint (``.pth``/``.pt``/``.bin``): the weights under
  ``model`` or ``module`` or at the top level, keys possibly prefixed ``module.``, ``encoder.`` or
  ``backbone.``. Pretraining checkpoints (``encoder.*`` + ``decoder.*`` + ``mask_token``) give a
  :class:`~videomae.models.pretrain.VideoMAEPretrain`, fine-tuning ones (``head.weight``) a
  :class:`~videomae.models.classifier.VideoMAEClassifier`. A pretraining checkpoint loaded with
  ``kind="classifier"`` gives a classifier with its encoder and a fresh head (fine-tuning init).
- an HF transformers VideoMAE directory (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``): ``VideoMAEForPreTraining`` or ``VideoMAEForVideoClassification``. HF's
  sizes and epsilons are kept (``layer_norm_eps`` for the blocks, 1e-5 for the decoder norm and
  ``fc_norm``), so the outputs equal HF's.
- our Lightning ``.ckpt`` (``state_dict`` keys ``net.*``, constructor arguments in
  ``checkpoint["videomae"]``), or the directory of shards that ``trainer=fsdp`` writes in its
  place (``torch.distributed.checkpoint`` files + ``meta.pt``; read in one process, see
  :func:`read_sharded`).
- our portable file: ``.safetensors`` + a sibling ``.json`` ``{"kind": ..., "config": {...}}``
  (written by :func:`save_portable`).

Without stored constructor arguments (official checkpoints) the sizes are inferred from the
weights: ``embed_dim`` and ``patch_size``/``tubelet_size`` from ``patch_embed.proj.weight``,
``depth`` from the number of blocks, ``mlp_ratio`` from ``fc1``, the decoder likewise,
``num_heads`` from :data:`NUM_HEADS` (the named sizes' widths). The clip geometry (``num_frames``,
``img_size``) is not in the weights: it defaults to 16 frames of 224 px. Keyword ``overrides``
of :func:`load` win over stored and inferred values (``num_frames``, ``img_size``,
``num_classes``, ``num_heads``, ...).

Position tables: the fixed sinusoidal table is not stored; it is rebuilt for the model's own grid,
so any ``num_frames``/``img_size`` works. A learned ``pos_embed`` whose grid differs from the
requested one is resized by trilinear interpolation over ``(T', H', W')``; the source grid comes
from the stored config, else from the token count (square frames, ``T'`` among the model's own,
``16 / tubelet`` and ``8 / tubelet``).

Safety: every pickle is read with ``torch.load(..., map_location="cpu", weights_only=True)``; a
file whose unpickling would need arbitrary globals (i.e. run code) is refused with a ValueError.
The ``.metadata`` pickle of a sharded checkpoint is read with an unpickler that allows only the
classes of ``torch.distributed.checkpoint``'s metadata.
Shapes are checked key by key (ValueError naming the key and both shapes) and missing or
unexpected keys are errors (known harmless extras of official checkpoints are dropped).

:func:`save_portable` and :func:`save_hf` write the portable and the HF formats.

Modules:

- :mod:`~videomae.checkpoints.official`: the official ``.pth`` reader;
- :mod:`~videomae.checkpoints.hf`: HF transformers directories (reader, :func:`save_hf`, the
  name maps :func:`hf_to_official` / :func:`official_to_hf`);
- :mod:`~videomae.checkpoints.lightning`: our Lightning ``.ckpt`` and the sharded FSDP
  directories (:func:`read_sharded`);
- :mod:`~videomae.checkpoints.portable`: our ``.safetensors`` + ``.json`` (reader,
  :func:`save_portable`);
- :mod:`~videomae.checkpoints.build`: the shared pieces (safe ``torch.load``, shape checks,
  config inference from weights, building a model, position-table resize);
- :mod:`~videomae.checkpoints.transfer`: a classifier started from any checkpoint's encoder
  (:func:`init_classifier_from`, ``model.init_from``);
- :mod:`~videomae.checkpoints.files`: where a run's checkpoints are (the resume rule) and what one
  says it is, read without torch.

Importing this package imports no torch (:mod:`~videomae.checkpoints.files` is used before any
heavy import): the readers and writers are imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videomae.checkpoints.files import is_sharded_checkpoint

if TYPE_CHECKING:
    from videomae.checkpoints.build import (
        DECODER_NUM_HEADS,
        KINDS,
        NUM_HEADS,
        Model,
        check_shapes,
        model_kind,
        resize_pos_embed,
    )
    from videomae.checkpoints.hf import (
        HF_NORM_EPS,
        hf_config,
        hf_to_official,
        official_to_hf,
        save_hf,
    )
    from videomae.checkpoints.lightning import read_sharded
    from videomae.checkpoints.portable import save_portable
    from videomae.checkpoints.transfer import init_classifier_from

_LAZY = {
    "DECODER_NUM_HEADS": "build",
    "KINDS": "build",
    "NUM_HEADS": "build",
    "Model": "build",
    "check_shapes": "build",
    "model_kind": "build",
    "resize_pos_embed": "build",
    "HF_NORM_EPS": "hf",
    "hf_config": "hf",
    "hf_to_official": "hf",
    "official_to_hf": "hf",
    "save_hf": "hf",
    "read_sharded": "lightning",
    "save_portable": "portable",
    "init_classifier_from": "transfer",
}
"""Public name -> the submodule that defines it (imported, with torch, on first access)."""

__all__ = [
    "DECODER_NUM_HEADS",
    "HF_NORM_EPS",
    "KINDS",
    "NUM_HEADS",
    "Model",
    "check_shapes",
    "hf_config",
    "hf_to_official",
    "init_classifier_from",
    "is_sharded_checkpoint",
    "load",
    "model_kind",
    "official_to_hf",
    "read_sharded",
    "resize_pos_embed",
    "save_hf",
    "save_portable",
]


def __getattr__(name: str) -> Any:
    """The public names of the submodules, imported on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def load(path: str | Path, *, kind: str | None = None, **overrides: Any) -> Model:
    """Load a VideoMAE model from any supported format (see the module docstring).

    Args:
        path: an official ``.pth``/``.pt``, our Lightning ``.ckpt`` (or the sharded directory
            FSDP writes), our portable ``.safetensors`` (with its ``.json``), or an HF
            transformers directory.
        kind: ``"pretrain"`` or ``"classifier"``; by default the checkpoint's own. A pretraining
            checkpoint loaded as ``"classifier"`` gives its encoder with a fresh head (pass
            ``num_classes``).
        overrides: constructor arguments that win over the stored or inferred ones (e.g.
            ``num_frames``, ``img_size``, ``num_classes``, ``num_heads``, ``drop_path_rate``).

    Returns:
        The model; its ``fresh_keys`` attribute lists the state-dict names that were not in the
        file and kept their initialization (e.g. ``head.*`` and ``fc_norm.*`` of a fine-tuning
        init from a pretraining checkpoint).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unknown or unsafe format, shapes or keys that do not fit.
    """
    from videomae.checkpoints.build import _model_class, _torch_load
    from videomae.checkpoints.hf import _load_hf
    from videomae.checkpoints.lightning import _load_lightning, read_sharded
    from videomae.checkpoints.official import _load_official
    from videomae.checkpoints.portable import _load_portable

    path = Path(path)
    if kind is not None:
        _model_class(kind)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if is_sharded_checkpoint(path):
        checkpoint = read_sharded(path)
        if "videomae" not in checkpoint:
            raise ValueError(f"{path}: a sharded checkpoint without the 'videomae' entry")
        return _load_lightning(checkpoint, path, kind, overrides)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{path}: a directory must be an HF model (config.json) or a sharded FSDP "
                "checkpoint (meta.pt)"
            )
        return _load_hf(path, kind, overrides)
    if path.suffix == ".safetensors":
        return _load_portable(path, kind, overrides)
    if path.suffix == ".json":
        return _load_portable(path.with_suffix(".safetensors"), kind, overrides)
    checkpoint = _torch_load(path)
    if isinstance(checkpoint, Mapping) and "videomae" in checkpoint and "state_dict" in checkpoint:
        return _load_lightning(checkpoint, path, kind, overrides)
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        net = {k[4:]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
        if net:  # a Lightning checkpoint without stored arguments: infer as official
            return _load_official(net, path, kind, overrides)
    return _load_official(checkpoint, path, kind, overrides)
