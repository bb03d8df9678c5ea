"""Video data: list files, frame sampling, decoding, clip transforms, datasets, the DataModule.

The public names below are imported lazily (on first attribute access), so importing a light
submodule such as :mod:`videomae.data.synthetic` or :mod:`videomae.data.lists` does not pull in
Lightning or decord.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videomae.data.datamodule import VideoDataModule
    from videomae.data.datasets import VideoClipDataset
    from videomae.data.decoding import VideoDecodeError, read_frames, video_length
    from videomae.data.lists import VideoRecord, read_list
    from videomae.data.sampling import dense_indices
    from videomae.data.transforms import (
        EvalTransform,
        MultiScaleCrop,
        PretrainTransform,
        center_crop_resize,
        normalize,
    )

_EXPORTS: dict[str, str] = {
    "VideoDataModule": "datamodule",
    "VideoClipDataset": "datasets",
    "VideoDecodeError": "decoding",
    "read_frames": "decoding",
    "video_length": "decoding",
    "VideoRecord": "lists",
    "read_list": "lists",
    "dense_indices": "sampling",
    "EvalTransform": "transforms",
    "MultiScaleCrop": "transforms",
    "PretrainTransform": "transforms",
    "center_crop_resize": "transforms",
    "normalize": "transforms",
}

__all__ = [
    "EvalTransform",
    "MultiScaleCrop",
    "PretrainTransform",
    "VideoClipDataset",
    "VideoDataModule",
    "VideoDecodeError",
    "VideoRecord",
    "center_crop_resize",
    "dense_indices",
    "normalize",
    "read_frames",
    "read_list",
    "video_length",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
