"""A run killed with SIGKILL mid-epoch and resumed from last.ckpt ends with the unbroken run's
weights, and continues at the right step with the same optimizer, scheduler and batches.

Each run is a subprocess running :data:`SCRIPT`: the real ``PretrainModule`` (tiny network,
tube masking, AdamW, warmup + cosine) on a small in-memory clip set whose items are drawn from
``(seed, epoch, index)`` (the augmentation rule the resume needs), loaded through a
``ResumableSampler``; ``ModelCheckpoint`` writes ``last.ckpt`` every 2 steps and
``ResumeDataLoader`` fast-forwards the loader on resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = r'''
import json, os, signal, sys
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from videomae.callbacks.resume import ResumableSampler, ResumeDataLoader
from videomae.models.masking import TubeMasking
from videomae.models.pretrain import VideoMAEPretrain
from videomae.modules.pretrain import PretrainModule

torch.set_num_threads(1)
mode, out = sys.argv[1], sys.argv[2]
SEED, KILL_STEP, SNAP_STEP = 5, 9, 8


class Clips(Dataset):
    """12 clips; item i of epoch e is drawn from (seed, epoch, index): a seeded augmentation."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 12

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(SEED * 1_000_003 + self.epoch * 1009 + index)
        return {"video": torch.randn(3, 4, 32, 32, generator=g)}


class Data(L.LightningDataModule):
    def train_dataloader(self):
        data = Clips()
        sampler = ResumableSampler(data, seed=SEED, shuffle=True)
        return DataLoader(data, batch_size=2, sampler=sampler, drop_last=True, num_workers=0)


def state(trainer, module):
    opt = trainer.optimizers[0]
    sched = trainer.lr_scheduler_configs[0].scheduler
    return {
        "model": {k: v.clone() for k, v in module.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "global_step": trainer.global_step,
        "epoch": trainer.current_epoch,
    }


class Probe(L.Callback):
    """Records every batch seen; snapshots the state at SNAP_STEP; kills the process."""

    def on_train_start(self, trainer, module):
        if mode == "resume":
            torch.save(state(trainer, module), f"{out}/resumed_state.pt")

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        with open(f"{out}/batches.jsonl", "a") as f:
            f.write(json.dumps([trainer.global_step, trainer.current_epoch, batch_idx,
                                float(batch["video"].double().sum())]) + "\n")
        if mode == "full" and trainer.global_step == SNAP_STEP:
            torch.save(state(trainer, module), f"{out}/snap_state.pt")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if mode == "kill" and trainer.global_step == KILL_STEP:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no last checkpoint


L.seed_everything(SEED, workers=True)
net = VideoMAEPretrain(img_size=32, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32,
                       depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
                       decoder_num_heads=2, normalize_target=True)
module = PretrainModule(net, TubeMasking(0.75), batch_size=2,
                        optim=dict(base_lr=0.5, warmup_epochs=1, min_lr=1e-4, weight_decay=0.05,
                                   betas=[0.9, 0.95]))
checkpoint = ModelCheckpoint(dirpath=f"{out}/checkpoints", save_last=True, save_top_k=0,
                             every_n_train_steps=2, enable_version_counter=False)
trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=3, logger=False,
                    enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                    callbacks=[checkpoint, ResumeDataLoader(), Probe()], default_root_dir=out)
ckpt = f"{out}/checkpoints/last.ckpt" if mode == "resume" else None
trainer.fit(module, datamodule=Data(), ckpt_path=ckpt)
torch.save(state(trainer, module), f"{out}/final_state.pt")
'''


def run(script: Path, mode: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(script), mode, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def batches(out: Path) -> list[list[float]]:
    return [json.loads(line) for line in (out / "batches.jsonl").read_text().splitlines()]


def assert_same(a: object, b: object, where: str) -> None:
    """Exact equality of nested state dicts (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where  # type: ignore[arg-type]
        for i, (x, y) in enumerate(zip(a, b, strict=True)):  # type: ignore[call-overload]
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_sigkill_mid_epoch_then_resume_matches_unbroken_run(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    full, broken = tmp_path / "full", tmp_path / "broken"
    full.mkdir()
    broken.mkdir()

    proc = run(script, "full", full)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = run(script, "kill", broken)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    assert not (broken / "final_state.pt").exists()
    killed_batches = batches(broken)
    # it died right after optimizer step 9 (epoch 1, batch 3 of 6), one step past last.ckpt
    assert killed_batches[-1][:3] == [8, 1, 2]

    proc = run(script, "resume", broken)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "not resumable" not in proc.stderr  # Lightning's mid-epoch warning is gone

    # resumed at the last checkpoint (step 8: epoch 1, after 2 of its 6 batches) ...
    resumed = torch.load(broken / "resumed_state.pt", weights_only=False)
    snapshot = torch.load(full / "snap_state.pt", weights_only=False)
    assert (resumed["global_step"], resumed["epoch"]) == (8, 1)
    # ... with the unbroken run's weights, AdamW moments and lr-scheduler state at that step
    assert_same(resumed, snapshot, "state at step 8")

    # the resumed run takes exactly the batches the unbroken one took from step 8 on
    unbroken = batches(full)
    after = batches(broken)[len(killed_batches) :]
    assert after == unbroken[8:]
    assert after[0][:3] == [8, 1, 2]  # batch_idx continues mid-epoch

    # and ends with the same weights, optimizer and scheduler, bit for bit
    final_full = torch.load(full / "final_state.pt", weights_only=False)
    final_resumed = torch.load(broken / "final_state.pt", weights_only=False)
    assert final_full["global_step"] == 18
    assert_same(final_resumed, final_full, "final state")


@pytest.mark.parametrize("dummy", [None])
def test_plain_loader_resume_is_not_exact_without_the_sampler(dummy: None) -> None:
    """What Lightning does with a plain shuffled DataLoader: the restored run restarts the epoch
    from its first batch, so it cannot match (the reason for ResumableSampler)."""
    from videomae.callbacks.resume import _resumable_samplers

    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=2, shuffle=True)
    assert _resumable_samplers(loader) == []
