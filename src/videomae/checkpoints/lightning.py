"""Reads our Lightning checkpoints: a ``.ckpt`` file (``state_dict`` keys ``net.*``,
constructor arguments in ``checkpoint["videomae"]``) or the directory of shards that
``trainer=fsdp`` writes in its place (``torch.distributed.checkpoint`` files + ``meta.pt``),
read in one process by :func:`read_sharded`. The ``.metadata`` pickle of such a directory is read
with an unpickler that allows only the classes of ``torch.distributed.checkpoint``'s metadata.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from videomae.checkpoints.build import Model, _torch_load
from videomae.checkpoints.files import is_sharded_checkpoint
from videomae.checkpoints.portable import _load_ours

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
