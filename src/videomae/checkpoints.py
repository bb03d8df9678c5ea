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
``num_heads`` from :data:`NUM_HEADS` (the registry's widths). The clip geometry (``num_frames``,
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
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videomae.checkpoint_files import is_sharded_checkpoint
from videomae.models.classifier import VideoMAEClassifier
from videomae.models.pretrain import VideoMAEPretrain
from videomae.models.vit import sinusoid_table

log = logging.getLogger(__name__)

KINDS = ("pretrain", "classifier")
"""The model kinds: :class:`VideoMAEPretrain` and :class:`VideoMAEClassifier`."""

NUM_HEADS: dict[int, int] = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
"""Encoder attention heads of the known widths (the registry's sizes)."""

DECODER_NUM_HEADS: dict[int, int] = {96: 3, 192: 3, 384: 6, 512: 8, 640: 8}
"""Decoder attention heads of the known decoder widths (the registry's sizes)."""

HF_NORM_EPS = 1e-5
"""HF's epsilon of the decoder's final norm and of ``fc_norm`` (``nn.LayerNorm`` default)."""

Model = VideoMAEPretrain | VideoMAEClassifier

# ---------------------------------------------------------------------------- HF <-> official names
_LAYER_PARTS = {
    "attention.output.dense": "attn.proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}
"""HF module path inside a layer -> our module path inside a block (attention handled apart)."""

_UNCHANGED = ("encoder_to_decoder.", "mask_token", "decoder.norm.", "decoder.head.", "fc_norm.")
"""Names that HF and the official code share."""


def hf_to_official(
    hf_state: Mapping[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Map a ``VideoMAEForPreTraining`` or ``VideoMAEForVideoClassification`` state dict.

    HF splits the fused ``qkv`` into ``query``/``key``/``value``; its query/value biases are
    ``query.bias``/``value.bias`` (transformers 5) or ``q_bias``/``v_bias`` (transformers 4).
    ValueError on a name it does not know.

    Args:
        hf_state: the HF model's ``state_dict()``.
        encoder_prefix: where our encoder lives: ``"encoder."`` in :class:`VideoMAEPretrain`,
            ``""`` (top level) in :class:`VideoMAEClassifier`.
    """
    ours: dict[str, torch.Tensor] = {}
    prefixes = {
        "videomae.encoder.layer.": f"{encoder_prefix}blocks.",
        "decoder.decoder_layers.": "decoder.blocks.",
    }
    for name, tensor in hf_state.items():
        if name.startswith("videomae.embeddings.patch_embeddings.projection."):
            ours[f"{encoder_prefix}patch_embed.proj." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("videomae.layernorm."):
            ours[f"{encoder_prefix}norm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("classifier."):
            ours["head." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith(_UNCHANGED):
            ours[name] = tensor
        else:
            prefix = next((p for p in prefixes if name.startswith(p)), None)
            if prefix is None:
                raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
            index, rest = name[len(prefix) :].split(".", 1)
            base = f"{prefixes[prefix]}{index}."
            attention = "attention.attention."
            if rest.startswith(attention):
                part = rest[len(attention) :]
                if part in ("query.bias", "q_bias"):
                    ours[base + "attn.q_bias"] = tensor
                elif part in ("value.bias", "v_bias"):
                    ours[base + "attn.v_bias"] = tensor
                elif part == "query.weight":
                    ours[base + "attn.qkv.weight"] = torch.cat(
                        [
                            tensor,
                            hf_state[name.replace("query", "key")],
                            hf_state[name.replace("query", "value")],
                        ]
                    )
                elif part not in ("key.weight", "value.weight"):
                    raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
                continue
            module, leaf = rest.rsplit(".", 1)
            if module not in _LAYER_PARTS:
                raise ValueError(f"unknown HF VideoMAE parameter {name!r}")
            ours[base + _LAYER_PARTS[module] + "." + leaf] = tensor
    return ours


def official_to_hf(
    state: Mapping[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`hf_to_official`, with the transformers 5 names (``query.bias``).

    Args:
        state: our (official-named) state dict.
        encoder_prefix: ``"encoder."`` for :class:`VideoMAEPretrain`, ``""`` for
            :class:`VideoMAEClassifier`.
    """
    parts = {ours: hf for hf, ours in _LAYER_PARTS.items()}
    block = re.compile(rf"^(?:{re.escape(encoder_prefix)}|(decoder\.))blocks\.(\d+)\.(.+)$")
    hf: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().contiguous()
        match = block.match(name)
        if match:
            decoder, index, rest = match.groups()
            base = (
                f"decoder.decoder_layers.{index}."
                if decoder
                else f"videomae.encoder.layer.{index}."
            )
            attention = base + "attention.attention."
            if rest == "attn.qkv.weight":
                query, key, value = tensor.chunk(3)
                hf[attention + "query.weight"] = query.contiguous()
                hf[attention + "key.weight"] = key.contiguous()
                hf[attention + "value.weight"] = value.contiguous()
            elif rest == "attn.q_bias":
                hf[attention + "query.bias"] = tensor
            elif rest == "attn.v_bias":
                hf[attention + "value.bias"] = tensor
            else:
                module, leaf = rest.rsplit(".", 1)
                if module not in parts:
                    raise ValueError(f"{name!r} has no HF transformers VideoMAE equivalent")
                hf[base + parts[module] + "." + leaf] = tensor
        elif name.startswith(f"{encoder_prefix}patch_embed.proj."):
            leaf = name.rsplit(".", 1)[1]
            hf["videomae.embeddings.patch_embeddings.projection." + leaf] = tensor
        elif name.startswith(f"{encoder_prefix}norm."):
            hf["videomae.layernorm." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("head."):
            hf["classifier." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith(_UNCHANGED):
            hf[name] = tensor
        else:
            raise ValueError(f"{name!r} has no HF transformers VideoMAE equivalent")
    return hf


# ---------------------------------------------------------------------------- safe reading
_DCP_METADATA_GLOBALS = frozenset(
    {
        *(
            ("torch.distributed.checkpoint.metadata", name)
            for name in (
                "BytesStorageMetadata",
                "ChunkStorageMetadata",
                "Metadata",
                "MetadataIndex",
                "StorageMeta",
                "TensorProperties",
                "TensorStorageMetadata",
                "_MEM_FORMAT_ENCODING",
            )
        ),
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        ("torch", "Size"),
        ("torch.serialization", "_get_layout"),
        ("collections", "OrderedDict"),
        ("pathlib", "PosixPath"),
        ("pathlib", "PurePosixPath"),
    }
)
"""The globals a ``torch.distributed.checkpoint`` ``.metadata`` pickle needs (and torch dtypes)."""


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles ``torch.distributed.checkpoint`` metadata and nothing else: exact (module,
    name) pairs only (a dotted name would reach attributes of the module, e.g. ``os``)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = "." not in name and (
            (module, name) in _DCP_METADATA_GLOBALS
            or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
        )
        if not allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def read_sharded(path: str | Path) -> dict[str, Any]:
    """A sharded FSDP checkpoint directory as one Lightning checkpoint dict, in this process
    (never a collective): ``state_dict`` (full tensors on the CPU) plus what ``meta.pt`` holds
    (``videomae``, ``hyper_parameters``, loop state, ...). The optimizer shards are not read.
    The whole model must fit in memory. ValueError naming the path when it is not such a
    directory, or when it holds anything but tensors under ``model`` (pickled objects there
    would be unpickled freely by torch)."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
    from torch.distributed.checkpoint.metadata import StorageMeta, TensorStorageMetadata
    from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

    path = Path(path)
    if not is_sharded_checkpoint(path):
        raise ValueError(f"{path}: not a sharded checkpoint directory (no meta.pt / .metadata)")
    try:
        with open(path / ".metadata", "rb") as handle:
            metadata = _MetadataUnpickler(handle).load()
        entries = metadata.state_dict_metadata
        planner_data = metadata.planner_data
    except (pickle.UnpicklingError, OSError, EOFError, AttributeError) as error:
        raise ValueError(f"refused to read {path / '.metadata'}: {error}") from error
    model_keys = [key for key in entries if tuple(planner_data.get(key, ()))[:1] == ("model",)]
    if not model_keys:
        raise ValueError(f"{path}: not a Lightning sharded checkpoint (no 'model' entries)")
    for key in model_keys:
        if not isinstance(entries[key], TensorStorageMetadata):
            raise ValueError(f"refused to read {path}: its entry {key!r} is not a tensor")

    class SafeReader(FileSystemReader):
        """Hands torch the metadata read above instead of unpickling the file freely."""

        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    shards: dict[str, Any] = {}
    _load_state_dict(
        shards,
        storage_reader=SafeReader(path),
        planner=_EmptyStateDictLoadPlanner(keys={"model"}),
        no_dist=True,
    )
    meta = _torch_load(path / "meta.pt")
    if not isinstance(meta, Mapping) or not isinstance(shards.get("model"), Mapping):
        raise ValueError(f"{path}: not a Lightning sharded checkpoint (no 'model' shards)")
    return {**meta, "state_dict": dict(shards["model"])}


def _torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; refuses code-running pickles."""
    try:
        # official training checkpoints store their argparse options beside the weights: a
        # Namespace is plain data and allowed; every other non-tensor global is refused
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refused to load {path}: unpickling it would run code or build arbitrary objects "
            f"(only tensors and plain containers are accepted; torch.load weights_only=True). "
            f"PyTorch: {str(error).splitlines()[0]}"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"cannot read {path} as a PyTorch checkpoint: {error}") from error


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file (no code runs)."""
    try:
        from safetensors.torch import load_file
    except ImportError as error:  # pragma: no cover - safetensors comes with transformers
        raise ImportError("reading .safetensors files needs the safetensors package") from error
    return load_file(str(path), device="cpu")


def _write_safetensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors (contiguous copies, no shared storage) to ``path``."""
    try:
        from safetensors.torch import save_file
    except ImportError as error:  # pragma: no cover
        raise ImportError("writing .safetensors files needs the safetensors package") from error
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


# ---------------------------------------------------------------------------- building
def _model_class(kind: str) -> type[Model]:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return VideoMAEPretrain if kind == "pretrain" else VideoMAEClassifier


def _normalize_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """JSON round trips turn ``img_size`` tuples into lists; turn them back."""
    config = dict(config)
    if isinstance(config.get("img_size"), list):
        config["img_size"] = tuple(config["img_size"])
    return config


def _grid(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """The token grid ``(T', H', W')`` of constructor arguments."""
    size = config.get("img_size", 224)
    height, width = (size, size) if isinstance(size, int) else size
    patch = config.get("patch_size", 16)
    return (
        config.get("num_frames", 16) // config.get("tubelet_size", 2),
        height // patch,
        width // patch,
    )


def _source_grid(num_tokens: int, config: Mapping[str, Any]) -> tuple[int, int, int]:
    """Guess the grid of a stored learned ``pos_embed`` of ``num_tokens`` tokens."""
    tubelet = config.get("tubelet_size", 2)
    candidates = [_grid(config)[0], 16 // tubelet, 8 // tubelet]
    for frames in candidates:
        if frames > 0 and num_tokens % frames == 0:
            side = math.isqrt(num_tokens // frames)
            if side * side == num_tokens // frames:
                return frames, side, side
    raise ValueError(
        f"cannot infer the grid of a learned pos_embed with {num_tokens} tokens; pass num_frames "
        f"and img_size of the checkpoint's model"
    )


def resize_pos_embed(
    pos_embed: torch.Tensor, source: tuple[int, int, int], target: tuple[int, int, int]
) -> torch.Tensor:
    """Trilinear resize of a ``(1, T'*H'*W', D)`` position table from grid ``source`` to
    ``target`` (interpolated over ``(T', H', W')``)."""
    if tuple(source) == tuple(target):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *source, dim).permute(0, 4, 1, 2, 3).float()
    grid = F.interpolate(grid, size=tuple(target), mode="trilinear", align_corners=False)
    return grid.permute(0, 2, 3, 4, 1).reshape(1, math.prod(target), dim).to(pos_embed.dtype)


def _prepare_pos_embed(
    state: dict[str, torch.Tensor],
    key: str,
    config: dict[str, Any],
    source_config: Mapping[str, Any] | None,
    kind: str,
) -> None:
    """Drop a stored sinusoidal table, or keep (and resize) a learned one, in place.

    Sets ``config["learnable_pos_embed"]`` for classifiers when the checkpoint has a learned table.
    """
    table = state.get(key)
    if table is None:
        return
    table = table.float()
    if table.ndim == 2:
        table = table[None]
    if torch.allclose(table, sinusoid_table(table.shape[1], table.shape[2]), atol=1e-4):
        del state[key]  # the fixed table: rebuilt for the model's own grid
        return
    if kind == "pretrain":
        raise ValueError(
            f"{key} is a learned position table; VideoMAEPretrain supports the sinusoidal one only"
        )
    config["learnable_pos_embed"] = True
    source = _grid(source_config) if source_config else _source_grid(table.shape[1], config)
    if math.prod(source) != table.shape[1]:
        source = _source_grid(table.shape[1], config)
    state[key] = resize_pos_embed(table, source, _grid(config))


def check_shapes(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    origin: str,
    where: str = "the model",
) -> None:
    """Raise ``ValueError`` naming the first key of ``state`` whose shape differs in ``expected``.

    Keys that only one side has are not checked here (the callers report them).
    """
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{origin}: {key} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(expected[key].shape)} in {where}"
            )


def _load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    origin: str,
    allow_missing: tuple[str, ...] = (),
) -> None:
    """Copy ``state`` into ``model``: shapes checked per key, missing/unexpected keys reported."""
    expected = model.state_dict()
    check_shapes(
        state,
        expected,
        origin,
        where="the model (check the size overrides, e.g. num_frames, img_size, num_classes, "
        "embed_dim)",
    )
    missing = [k for k in expected if k not in state and not k.startswith(allow_missing)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{origin}: the weights do not fit a {type(model).__name__}; "
            f"missing keys: {missing or 'none'}; unexpected keys: {unexpected or 'none'}"
        )
    model.load_state_dict(dict(state), strict=False)
    fresh = [k for k in expected if k not in state]
    if fresh:
        # the caller reports them (``fresh_keys``), knowing which of them its model keeps
        log.debug("%s: not in the checkpoint, left at their initialization: %s", origin, fresh)
    # the names a caller copying these weights elsewhere must not take from the file
    model.fresh_keys = fresh


def _build(
    kind: str,
    config: Mapping[str, Any],
    state: dict[str, torch.Tensor],
    origin: str,
    overrides: Mapping[str, Any],
    source_config: Mapping[str, Any] | None = None,
    allow_missing: tuple[str, ...] = (),
) -> Model:
    """Construct a ``kind`` model from ``config`` + ``overrides`` and load ``state`` into it."""
    if kind == "classifier":  # arguments of the pretraining network only
        overrides = {
            k: v
            for k, v in overrides.items()
            if not k.startswith("decoder_") and k != "normalize_target"
        }
        # a new number of classes: the stored head does not fit, a fresh one is made (as the
        # official fine-tuning code does when it starts from another data set's checkpoint)
        head = state.get("head.weight")
        wanted = overrides.get("num_classes")
        if head is not None and wanted is not None and head.shape[0] != wanted:
            log.warning(
                "%s: head has %d classes, num_classes=%d: the head is re-initialized",
                origin,
                head.shape[0],
                wanted,
            )
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            allow_missing = (*allow_missing, "head.")
    config = _normalize_config({**config, **overrides})
    key = "pos_embed" if kind == "classifier" else "encoder.pos_embed"
    _prepare_pos_embed(state, key, config, source_config, kind)
    try:
        model = _model_class(kind)(**config)
    except TypeError as error:
        raise ValueError(f"{origin}: bad model arguments: {error}") from error
    _load_into(model, state, origin, allow_missing)
    return model


# ---------------------------------------------------------------------------- official format
def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def _block_count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}blocks\.(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def _heads(table: dict[int, int], dim: int, name: str) -> int:
    if dim not in table:
        raise ValueError(
            f"cannot infer {name} for width {dim} (known widths: {sorted(table)}); "
            f"pass {name}=... as an override"
        )
    return table[dim]


def _infer_encoder(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Encoder constructor arguments read off official-named weights under ``prefix``."""
    key = f"{prefix}patch_embed.proj.weight"
    if key not in state:
        raise ValueError(f"no {key} in the checkpoint: not a VideoMAE model")
    embed_dim, in_chans, tubelet, patch, _ = state[key].shape
    config: dict[str, Any] = {
        "embed_dim": embed_dim,
        "in_chans": in_chans,
        "tubelet_size": tubelet,
        "patch_size": patch,
        "depth": _block_count(state, prefix),
        "qkv_bias": f"{prefix}blocks.0.attn.q_bias" in state,
    }
    fc1 = state.get(f"{prefix}blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        config["mlp_ratio"] = fc1.shape[0] / embed_dim
    if f"{prefix}blocks.0.gamma_1" in state:
        config["init_values"] = 0.1  # any positive value creates gamma_1/gamma_2 (overwritten)
    return config


def _infer_config(
    state: Mapping[str, torch.Tensor],
    kind: str,
    overrides: Mapping[str, Any],
    with_decoder: bool = True,
) -> dict[str, Any]:
    """Constructor arguments of a ``kind`` model from official-named weights (the decoder's
    only when ``with_decoder``: a pretraining checkpoint read for its encoder needs none)."""
    prefix = "encoder." if kind == "pretrain" else ""
    config = _infer_encoder(state, prefix)
    if "num_heads" not in overrides:
        config["num_heads"] = _heads(NUM_HEADS, config["embed_dim"], "num_heads")
    if kind == "pretrain" and with_decoder:
        dec_dim = state["mask_token"].shape[-1]
        config["decoder_embed_dim"] = dec_dim
        config["decoder_depth"] = _block_count(state, "decoder.")
        if "decoder_num_heads" not in overrides:
            config["decoder_num_heads"] = _heads(DECODER_NUM_HEADS, dec_dim, "decoder_num_heads")
    else:
        head = state.get("head.weight")
        config["num_classes"] = head.shape[0] if head is not None else 0
        config["use_mean_pooling"] = "norm.weight" not in state
        if config["use_mean_pooling"] and head is not None and "fc_norm.weight" not in state:
            config["use_fc_norm"] = False  # our classifier built with use_fc_norm=False
    return config


def _unwrap(checkpoint: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict of an official checkpoint: under ``model``, ``module`` or at the top."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: expected a dict of weights, got {type(checkpoint).__name__}")
    for key in ("model", "module", "state_dict"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path}: no tensors found (looked under 'model', 'module', top level)")
    return _strip(state, "module.")


_HARMLESS = ("encoder.head.", "head_dist.", "encoder.fc_norm.")
"""Extras of official checkpoints that our models do not have and that change nothing
(``encoder.head`` is an Identity-sized placeholder in the official pretraining encoder)."""


def _load_official(
    checkpoint: Any, path: Path, kind: str | None, overrides: Mapping[str, Any]
) -> Model:
    """Build a model from an official VideoMAE / V2 state dict."""
    state = _unwrap(checkpoint, path)
    is_pretrain = "mask_token" in state and any(k.startswith("decoder.") for k in state)
    allow_missing: tuple[str, ...] = ()
    if is_pretrain:
        state = {k: v for k, v in state.items() if not k.startswith(_HARMLESS)}
        target = kind or "pretrain"
        config = _infer_config(state, "pretrain", overrides, with_decoder=target == "pretrain")
        if target == "classifier":  # fine-tuning init: the encoder, a fresh head and fc_norm
            dropped = {k.split(".")[0] for k in state if not k.startswith("encoder.")}
            if any(k.startswith("encoder.norm.") for k in state):
                dropped.add("encoder.norm")  # mean pooling + a fresh fc_norm replace it
            log.info("%s: the encoder is used; dropped: %s", path, ", ".join(sorted(dropped)))
            state = {
                k[len("encoder.") :]: v
                for k, v in state.items()
                if k.startswith("encoder.") and not k.startswith("encoder.norm.")
            }
            config = {k: v for k, v in config.items() if not k.startswith("decoder_")}
            config.update(use_mean_pooling=True, num_classes=0)
            allow_missing = ("head.", "fc_norm.")
    else:
        if kind == "pretrain":
            raise ValueError(
                f"{path}: a fine-tuning checkpoint (no decoder) cannot give kind=pretrain"
            )
        for prefix in ("encoder.", "backbone."):
            state = _strip(state, prefix)
        state = {k: v for k, v in state.items() if not k.startswith("head_dist.")}
        if "head.weight" not in state and kind != "classifier":
            raise ValueError(
                f"{path}: neither a pretraining checkpoint (encoder.*, decoder.*, mask_token) "
                f"nor a fine-tuning one (head.weight); pass kind='classifier' and num_classes "
                f"to load an encoder alone"
            )
        config = _infer_config(state, "classifier", overrides)
        target = "classifier"
        if "head.weight" not in state:
            allow_missing = ("head.", "fc_norm.")
    return _build(target, config, state, str(path), overrides, allow_missing=allow_missing)


# ---------------------------------------------------------------------------- our formats
def _load_ours(
    kind: str,
    config: Mapping[str, Any],
    state: dict[str, torch.Tensor],
    origin: str,
    requested: str | None,
    overrides: Mapping[str, Any],
) -> Model:
    config = _normalize_config(config)
    if kind == "pretrain" and requested == "classifier":  # fine-tuning init from our pretraining
        keep = ("img_size", "num_frames", "num_heads", "norm_eps", "attention")
        geometry = {k: config[k] for k in keep if k in config}
        return _load_official(
            {"model": state}, Path(origin), "classifier", {**geometry, **overrides}
        )
    if requested is not None and requested != kind:
        raise ValueError(f"{origin} holds a {kind} model, not {requested}")
    return _build(kind, config, state, origin, overrides, source_config=config)


def _load_lightning(
    checkpoint: Mapping[str, Any], path: Path, kind: str | None, overrides: Any
) -> Model:
    meta = checkpoint["videomae"]
    state = {
        k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")
    }
    if not state:
        raise ValueError(f"{path}: its state_dict has no 'net.*' weights")
    return _load_ours(meta["kind"], meta["config"], state, str(path), kind, overrides)


def _load_portable(path: Path, kind: str | None, overrides: Mapping[str, Any]) -> Model:
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise ValueError(f"{path}: the portable format needs {meta_path.name} beside it")
    meta = json.loads(meta_path.read_text())
    if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
        raise ValueError(f"{meta_path}: expected {{'kind': ..., 'config': {{...}}}}")
    state = _read_safetensors(path)
    return _load_ours(meta["kind"], meta["config"], state, str(path), kind, overrides)


# ---------------------------------------------------------------------------- HF format
_HF_ARCHITECTURES = {
    "VideoMAEForPreTraining": "pretrain",
    "VideoMAEForVideoClassification": "classifier",
}


def _load_hf(directory: Path, kind: str | None, overrides: Mapping[str, Any]) -> Model:
    hf = json.loads((directory / "config.json").read_text())
    if hf.get("model_type") != "videomae":
        raise ValueError(f"{directory}: model_type {hf.get('model_type')!r} is not videomae")
    architecture = (hf.get("architectures") or [None])[0]
    kind = kind or _HF_ARCHITECTURES.get(architecture)
    if kind is None:
        raise ValueError(f"{directory}: unknown architecture {architecture!r}; pass kind=...")
    if (directory / "model.safetensors").is_file():
        hf_state = _read_safetensors(directory / "model.safetensors")
    elif (directory / "pytorch_model.bin").is_file():
        hf_state = _torch_load(directory / "pytorch_model.bin")
    else:
        raise ValueError(f"{directory}: no model.safetensors or pytorch_model.bin")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{directory}: hidden_act {hf['hidden_act']!r} is not supported (gelu)")
    hidden = hf.get("hidden_size", 768)
    size = hf.get("image_size", 224)
    config: dict[str, Any] = {
        "img_size": size if isinstance(size, int) else tuple(size),
        "patch_size": hf.get("patch_size", 16),
        "num_frames": hf.get("num_frames", 16),
        "tubelet_size": hf.get("tubelet_size", 2),
        "in_chans": hf.get("num_channels", 3),
        "embed_dim": hidden,
        "depth": hf.get("num_hidden_layers", 12),
        "num_heads": hf.get("num_attention_heads", 12),
        "mlp_ratio": hf.get("intermediate_size", 4 * hidden) / hidden,
        "qkv_bias": hf.get("qv_bias", hf.get("qkv_bias", True)),
        "norm_eps": hf.get("layer_norm_eps", 1e-12),
    }
    use_mean_pooling = hf.get("use_mean_pooling", True)
    if kind == "classifier" and architecture == "VideoMAEForPreTraining":
        # fine-tuning init from HF pretraining weights: its encoder, a fresh head (official path)
        state = hf_to_official(hf_state, encoder_prefix="encoder.")
        keep = ("img_size", "patch_size", "num_frames", "tubelet_size", "num_heads", "norm_eps")
        return _load_official(
            {"model": state},
            directory,
            "classifier",
            {**{k: config[k] for k in keep}, "fc_norm_eps": HF_NORM_EPS, **overrides},
        )
    if kind == "pretrain":
        if use_mean_pooling:
            raise ValueError(
                f"{directory}: a VideoMAEForPreTraining with use_mean_pooling=true has no final "
                f"encoder norm; VideoMAEPretrain (as the official model) needs one"
            )
        decoder = hf.get("decoder_hidden_size", 384)
        if hf.get("decoder_intermediate_size", 4 * decoder) / decoder != config["mlp_ratio"]:
            raise ValueError(f"{directory}: the decoder's MLP ratio differs from the encoder's")
        config.update(
            decoder_embed_dim=decoder,
            decoder_depth=hf.get("decoder_num_hidden_layers", 4),
            decoder_num_heads=hf.get("decoder_num_attention_heads", 6),
            decoder_norm_eps=HF_NORM_EPS,
            normalize_target=hf.get("norm_pix_loss", True),
        )
        state = hf_to_official(hf_state, encoder_prefix="encoder.")
    else:
        labels = hf.get("id2label") or {}
        config.update(
            num_classes=hf.get("num_labels", len(labels)) if labels or "num_labels" in hf else 2,
            use_mean_pooling=use_mean_pooling,
            fc_norm_eps=HF_NORM_EPS,
        )
        state = hf_to_official(
            {k: v for k, v in hf_state.items() if not k.startswith("decoder.")}, encoder_prefix=""
        )
    return _build(kind, config, state, str(directory), overrides, source_config=config)


# ---------------------------------------------------------------------------- public API
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


def model_kind(model: nn.Module) -> str:
    """``"pretrain"`` or ``"classifier"``; TypeError for other modules."""
    if isinstance(model, VideoMAEPretrain):
        return "pretrain"
    if isinstance(model, VideoMAEClassifier):
        return "classifier"
    raise TypeError(
        f"expected a VideoMAEPretrain or VideoMAEClassifier, got {type(model).__name__}"
    )


def save_portable(model: Model, path: str | Path) -> Path:
    """Write ``path`` (``.safetensors``, the state dict) and ``path.with_suffix(".json")``
    (``{"kind": ..., "config": {...}}``, the constructor arguments). Returns ``path``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"the portable file must end in .safetensors, got {path.name}")
    kind = model_kind(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_safetensors(model.state_dict(), path)
    meta = {"format": "videomae-portable", "version": 1, "kind": kind, "config": dict(model.config)}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def hf_config(model: Model) -> dict[str, Any]:
    """The ``config.json`` of the HF transformers model equivalent to ``model``.

    ValueError for what HF's VideoMAE cannot express: layer scale (``init_values``), a learned
    position table, non-square frames, a pretraining encoder without a final norm, a classifier
    without ``fc_norm`` (``use_fc_norm=False``) or with a ``head_norm``. HF fixes the
    epsilon of the decoder norm and of ``fc_norm`` to 1e-5: a model with another
    ``decoder_norm_eps``/``fc_norm_eps`` gives slightly different outputs there.
    """
    kind = model_kind(model)
    config = model.config
    if config.get("init_values", 0) and config["init_values"] > 0:
        raise ValueError("HF transformers VideoMAE has no layer scale (init_values > 0)")
    if config.get("learnable_pos_embed"):
        raise ValueError("HF transformers VideoMAE has no learned position table")
    if config.get("head_norm"):
        raise ValueError("HF transformers VideoMAE has no norm before the head (head_norm)")
    if config.get("use_fc_norm") is False:
        raise ValueError(
            "HF transformers VideoMAE always normalizes the pooled tokens (fc_norm); this "
            "classifier was built with use_fc_norm=false"
        )
    size = config["img_size"]
    if not isinstance(size, int):
        if size[0] != size[1]:
            raise ValueError(f"HF transformers VideoMAE needs square frames, got {size}")
        size = size[0]
    hidden = config["embed_dim"]
    out: dict[str, Any] = {
        "model_type": "videomae",
        "architectures": [
            "VideoMAEForPreTraining" if kind == "pretrain" else "VideoMAEForVideoClassification"
        ],
        "image_size": size,
        "patch_size": config["patch_size"],
        "num_channels": config["in_chans"],
        "num_frames": config["num_frames"],
        "tubelet_size": config["tubelet_size"],
        "hidden_size": hidden,
        "num_hidden_layers": config["depth"],
        "num_attention_heads": config["num_heads"],
        "intermediate_size": int(hidden * config["mlp_ratio"]),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": config["norm_eps"],
        "qkv_bias": config["qkv_bias"],
        "qv_bias": config["qkv_bias"],
        "torch_dtype": "float32",
    }
    if kind == "pretrain":
        decoder = config["decoder_embed_dim"]
        out.update(
            use_mean_pooling=False,
            decoder_hidden_size=decoder,
            decoder_num_hidden_layers=config["decoder_depth"],
            decoder_num_attention_heads=config["decoder_num_heads"],
            decoder_intermediate_size=int(decoder * config["mlp_ratio"]),
            norm_pix_loss=config["normalize_target"],
        )
    else:
        num_classes = config["num_classes"]
        out.update(
            use_mean_pooling=config["use_mean_pooling"],
            id2label={str(i): f"LABEL_{i}" for i in range(num_classes)},
            label2id={f"LABEL_{i}": i for i in range(num_classes)},
        )
    return out


def save_hf(model: Model, directory: str | Path) -> Path:
    """Write an HF transformers VideoMAE directory (``config.json`` + ``model.safetensors``) that
    ``VideoMAEForPreTraining`` / ``VideoMAEForVideoClassification.from_pretrained`` loads.

    See :func:`hf_config` for what HF cannot express. Returns ``directory``.
    """
    directory = Path(directory)
    config = hf_config(model)
    prefix = "encoder." if model_kind(model) == "pretrain" else ""
    state = official_to_hf(model.state_dict(), encoder_prefix=prefix)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _write_safetensors(state, directory / "model.safetensors")
    return directory
