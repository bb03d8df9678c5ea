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
    from videomae.data.decoding import VideoDecodeError, VideoInfo, probe, read_frames, video_length
    from videomae.data.lists import VideoRecord, folder_classes, read_list
    from videomae.data.randaugment import ClipRandAugment
    from videomae.data.sampling import dense_indices, dense_views, segment_indices, segment_views
    from videomae.data.transforms import (
        EvalTransform,
        FinetuneTransform,
        MultiScaleCrop,
        PretrainTransform,
        RandomErasing,
        RandomResizedCrop,
        TestTransform,
        center_crop_resize,
        spatial_crops,
    )

_EXPORTS: dict[str, str] = {
    "VideoDataModule": "datamodule",
    "VideoClipDataset": "datasets",
    "VideoDecodeError": "decoding",
    "VideoInfo": "decoding",
    "probe": "decoding",
    "read_frames": "decoding",
    "video_length": "decoding",
    "VideoRecord": "lists",
    "folder_classes": "lists",
    "read_list": "lists",
    "dense_indices": "sampling",
    "dense_views": "sampling",
    "segment_indices": "sampling",
    "segment_views": "sampling",
    "ClipRandAugment": "randaugment",
    "EvalTransform": "transforms",
    "FinetuneTransform": "transforms",
    "MultiScaleCrop": "transforms",
    "PretrainTransform": "transforms",
    "RandomErasing": "transforms",
    "RandomResizedCrop": "transforms",
    "TestTransform": "transforms",
    "center_crop_resize": "transforms",
    "spatial_crops": "transforms",
}

__all__ = [
    "ClipRandAugment",
    "EvalTransform",
    "FinetuneTransform",
    "MultiScaleCrop",
    "PretrainTransform",
    "RandomErasing",
    "RandomResizedCrop",
    "TestTransform",
    "VideoClipDataset",
    "VideoDataModule",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRecord",
    "center_crop_resize",
    "dense_indices",
    "dense_views",
    "folder_classes",
    "probe",
    "read_frames",
    "read_list",
    "segment_indices",
    "segment_views",
    "spatial_crops",
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
