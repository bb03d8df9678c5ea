"""``model.compile=true`` through Lightning: a compiled pretraining run with activation
checkpointing trains, compiles once (no recompilation between steps), writes checkpoints with
the network's own parameter names, and resumes from them. Slow: inductor compiles forward and
backward on the CPU (minutes on 2 cores)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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

ROOT = Path(__file__).resolve().parents[1]

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


def _skip_without_inductor() -> None:
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip("torch.compile is not supported on this Python")
    if not (os.environ.get("CXX") or any(map(shutil.which, ("c++", "g++", "clang++")))):
        pytest.skip("torch.compile (inductor) on CPU needs a C++ compiler; none found")


def test_compiled_run_trains_once_compiled_and_resumes(tmp_path: Path) -> None:
    _skip_without_inductor()
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # dynamo's counters outlive reset(): earlier tests' breaks are not ours
    torch.manual_seed(0)
    count = _GraphCount()
    module = _module()
    _trainer(tmp_path, 4, count).fit(module, train_dataloaders=_loader())
    assert module._compiled
    # compiled at the first step; the later steps reuse the graphs (fixed visible count)
    assert count.after_step[1] == count.after_step[-1] > 0, count.after_step
    # the mask counts come from the generator (module.mask_counts): nothing is read back from
    # the device in the forward, so dynamo makes one graph of it, without a break
    assert module.mask_counts == (24, 8)  # grid (2, 4, 4), 75% masked
    assert not counters["graph_break"], dict(counters["graph_break"])
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


def _train_ddp(run_dir: Path, max_steps: int) -> str:
    """``train.py`` on two CPU processes (DDP, gloo), compiled, with activation checkpointing;
    its output with dynamo's compile and recompile log lines."""
    args = [
        "experiment=k400_pretrain", "data=random", "backbone=tiny", "trainer=ddp_sim",
        "data.num_frames=8", "data.img_size=64", "data.batch_size=2", "data.train_batches=20",
        f"+trainer.max_steps={max_steps}", "+trainer.limit_val_batches=0", "validate=false",
        "model.optim.warmup_epochs=0", "model.compile=true", "model.net.grad_checkpointing=true",
        "callbacks.step_checkpoint.every_n_train_steps=3", "callbacks.reconstruction=null",
        "callbacks.rich_progress_bar=null", "logger=csv", "extras.print_config=false",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "TORCH_LOGS": "recompiles,dynamo", "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


def test_compiled_ddp_run_compiles_once_per_rank_and_resumes(tmp_path: Path) -> None:
    """``model.compile=true`` under DDP (two CPU processes) with activation checkpointing: both
    ranks compile, no frame is compiled twice (a recompilation shows as ``[frame/1]`` in dynamo's
    log), the checkpoint keeps the network's names, and a relaunch resumes and compiles again
    only once."""
    _skip_without_inductor()
    run_dir = tmp_path / "run"
    for max_steps in (6, 10):
        out = _train_ddp(run_dir, max_steps)
        for rank in (0, 1):
            assert f"[rank{rank}]" in out and "done compiler function" in out, out[-3000:]
        compiles = re.findall(r"\[(\d+)/(\d+)(?:_\d+)?\]", out)
        assert compiles and {n for _, n in compiles} == {"0"}, sorted(set(compiles))
        assert "Recompiling function" not in out
    assert "resuming from" in out
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 10
    assert not any("_orig_mod" in k or k.startswith("module.") for k in state["state_dict"])
