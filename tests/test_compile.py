"""``model.compile=true`` through Lightning: a compiled pretraining run with activation
checkpointing trains, compiles once (no recompilation between steps), writes checkpoints with
the network's own parameter names, and resumes from them. Slow: inductor compiles forward and
backward on the CPU (minutes on 2 cores)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from videomae.models import load
from videomae.models.masking import TubeMasking
from videomae.models.registry import create_pretrain
from videomae.modules.pretrain import PretrainModule

pytestmark = pytest.mark.slow

CLIP = {"img_size": 32, "num_frames": 4, "patch_size": 8, "tubelet_size": 2}


def _module() -> PretrainModule:
    net = create_pretrain("tiny", **CLIP, depth=2, grad_checkpointing=True)
    optim = {"base_lr": 1e-3, "weight_decay": 0.05, "warmup_steps": 1}
    return PretrainModule(net, TubeMasking(0.75), batch_size=2, optim=optim, compile=True)


def _loader() -> DataLoader:
    clips = torch.randn(8, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    return DataLoader([{"video": c} for c in clips], batch_size=2)


class _GraphCount(L.Callback):
    """The number of graphs dynamo has compiled, after every training step."""

    def __init__(self) -> None:
        self.after_step: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        from torch._dynamo.utils import counters

        self.after_step.append(int(counters["stats"]["unique_graphs"]))


def _trainer(folder: Path, max_steps: int, count: _GraphCount) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        default_root_dir=folder,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[
            ModelCheckpoint(dirpath=folder, save_last=True, every_n_train_steps=2),
            count,
        ],
    )


def test_compiled_run_trains_once_compiled_and_resumes(tmp_path: Path) -> None:
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this Python")
    if not (os.environ.get("CXX") or any(map(shutil.which, ("c++", "g++", "clang++")))):
        pytest.skip("torch.compile (inductor) on CPU needs a C++ compiler; none found")
    torch._dynamo.reset()
    torch.manual_seed(0)
    count = _GraphCount()
    module = _module()
    _trainer(tmp_path, 4, count).fit(module, train_dataloaders=_loader())
    assert module._compiled
    # compiled at the first step; the later steps reuse the graphs (fixed visible count)
    assert count.after_step[1] == count.after_step[-1] > 0, count.after_step
    loss = module.trainer.callback_metrics["train/loss_step"]
    assert torch.isfinite(loss)

    last = tmp_path / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in k for k in state)  # compiled in place: names unchanged
    assert set(state) == {f"net.{k}" for k in _module().net.state_dict()}
    assert type(load(last)).__name__ == "VideoMAEPretrain"

    resumed = _module()
    again = _GraphCount()
    trainer = _trainer(tmp_path, 6, again)
    trainer.fit(resumed, train_dataloaders=_loader(), ckpt_path=last)
    assert trainer.global_step == 6 and len(again.after_step) == 2
    assert again.after_step[0] == again.after_step[-1]
    torch._dynamo.reset()
