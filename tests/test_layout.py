"""Channels-last clips from the worker to the device: the values are torch's stack and collate,
the memory stays (..., T, H, W, C) through stacking, collation in a worker process and the
repeated-augmentation reshape, and the device's normalization gives the contiguous result."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import default_collate

from test_data import _dm
from videomae.data.device import normalize_video
from videomae.data.layout import channels_last_clip, collate, memory_order, stack


def _clips(n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` uint8 ``(C, T, H, W)`` clips lying as ``(T, H, W, C)`` in memory."""
    g = torch.Generator().manual_seed(seed)
    frames = [torch.randint(0, 256, (4, 6, 5, 3), generator=g, dtype=torch.uint8) for _ in range(n)]
    return [f.permute(3, 0, 1, 2) for f in frames]


def _channels_last(x: torch.Tensor) -> bool:
    """``(..., C, T, H, W)`` whose memory is ``(..., T, H, W, C)``."""
    lead = list(range(x.ndim - 4))
    return x.permute(*lead, *(d + x.ndim - 4 for d in (1, 2, 3, 0))).is_contiguous()


def test_channels_last_clip_is_the_transpose_without_copying_a_channels_last_input() -> None:
    tchw = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).view(2, 3, 4, 5)
    out = channels_last_clip(tchw)
    assert torch.equal(out, tchw.permute(1, 0, 2, 3)) and _channels_last(out)
    cl = tchw.contiguous(memory_format=torch.channels_last)
    assert channels_last_clip(cl).data_ptr() == cl.data_ptr()  # already lying so: a view
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        channels_last_clip(tchw[0])


def test_stack_keeps_memory_order_and_torch_values() -> None:
    clips = _clips(3)
    out = stack(clips)
    assert torch.equal(out, torch.stack(clips)) and out.shape == (3, 3, 4, 6, 5)
    assert _channels_last(out) and not _channels_last(torch.stack(clips))
    plain = [c.contiguous() for c in clips]
    assert stack(plain).is_contiguous() and torch.equal(stack(plain), out)
    mixed = [clips[0], plain[1]]  # different orders: torch's stack
    assert torch.equal(stack(mixed), torch.stack(mixed)) and stack(mixed).is_contiguous()
    assert memory_order(clips[0]) == (1, 2, 3, 0)
    with pytest.raises(ValueError, match="nothing to stack"):
        stack([])


def test_collate_is_default_collate_with_channels_last_videos() -> None:
    items = [
        {"video": v, "label": torch.tensor(i), "erase": torch.arange(6) + i, "path": f"v{i}"}
        for i, v in enumerate(_clips(4))
    ]
    out, ref = collate(items), default_collate(items)
    assert out.keys() == ref.keys() and out["path"] == ref["path"]
    for key in ("video", "label", "erase"):
        assert torch.equal(out[key], ref[key]) and out[key].dtype == ref[key].dtype
    assert _channels_last(out["video"]) and out["label"].shape == (4,)


def test_normalize_gives_the_contiguous_result_for_channels_last_batches() -> None:
    batch = stack(_clips(2, seed=1))
    out = normalize_video(batch)
    assert out.is_contiguous()
    torch.testing.assert_close(out, normalize_video(batch.contiguous()), rtol=0, atol=0)


def test_worker_batches_stay_channels_last(video_folder: Path) -> None:
    """Through a worker process (shared memory) and the repeated-augmentation reshape: the
    same numbers as the in-process loader, and channels-last memory."""
    batches = []
    for workers in (0, 1):
        L.seed_everything(0)
        dm = _dm(video_folder, num_workers=workers, num_sample=2, num_frames=4)
        dm.setup("fit")
        batches.append(next(iter(dm.train_dataloader())))
        dm.setup("validate")
        val = next(iter(dm.val_dataloader()))["video"]
        assert _channels_last(val) and val.shape == (2, 3, 4, 32, 32)
    here, worker = batches
    assert worker["video"].shape == (4, 3, 4, 32, 32) and _channels_last(worker["video"])
    assert torch.equal(here["index"], worker["index"])
    assert torch.equal(here["video"], worker["video"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pinning_and_the_copy_to_cuda_keep_channels_last() -> None:
    from lightning.fabric.utilities.apply_func import move_data_to_device

    batch = stack(_clips(2))
    pinned = batch.pin_memory()
    on_gpu = move_data_to_device({"video": pinned}, torch.device("cuda"))["video"]
    assert pinned.stride() == batch.stride() == on_gpu.stride()
    out = normalize_video(on_gpu)
    assert out.is_contiguous()
    torch.testing.assert_close(out.cpu(), normalize_video(batch), rtol=0, atol=1e-6)
