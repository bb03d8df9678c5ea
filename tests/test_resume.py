"""A run killed mid-epoch (SIGKILL, SIGKILL while writing last.ckpt, or preempted under a
simulated SLURM job) and resumed from its run folder ends with the unbroken run's weights, and
continues at the right step with the same optimizer, scheduler and batches.

Each run is a subprocess running :data:`SCRIPT`: the real ``PretrainModule`` (tiny network,
tube masking, AdamW, warmup + cosine) on a small in-memory clip set whose items are drawn from
``(seed, epoch, index)`` (the augmentation rule the resume needs), loaded through a
``ResumableSampler``; ``AtomicModelCheckpoint`` writes ``last.ckpt`` every 2 steps,
``PreemptionCheckpoint`` handles SLURM's signals, the resume rule of ``train.py``
(``resolve_ckpt_path`` with ``auto_resume``) finds the checkpoint and ``ResumeDataLoader``
fast-forwards the loader.
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
from torch.utils.data import DataLoader, Dataset

from videomae.callbacks.checkpoint import AtomicModelCheckpoint
from videomae.callbacks.preemption import PreemptionCheckpoint
from videomae.callbacks.resume import ResumableSampler, ResumeDataLoader, resolve_ckpt_path
from videomae.models.masking import TubeMasking
from videomae.models.pretrain import VideoMAEPretrain
from videomae.modules.pretrain import PretrainModule

torch.set_num_threads(1)
mode, out = sys.argv[1], sys.argv[2]
SEED, KILL_STEP, SNAP_STEPS = 5, 9, (8, 10)

if mode == "killwrite":  # SIGKILL halfway through writing the checkpoint of step 10
    import lightning.fabric.plugins.io.torch_io as torch_io

    real_save = torch_io._atomic_save

    def dying_save(checkpoint, filepath):
        if checkpoint["global_step"] == 10:
            import io
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            with open(filepath, "wb") as f:
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(checkpoint, filepath)

    torch_io._atomic_save = dying_save


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
        if mode == "full" and trainer.global_step in SNAP_STEPS:
            torch.save(state(trainer, module), f"{out}/snap_state_{trainer.global_step}.pt")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if mode == "kill" and trainer.global_step == KILL_STEP:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no last checkpoint
        if mode == "preempt" and trainer.global_step == KILL_STEP:
            os.kill(os.getpid(), signal.SIGUSR2)  # SLURM's warning: time limit or preemption


L.seed_everything(SEED, workers=True)
net = VideoMAEPretrain(img_size=32, patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32,
                       depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
                       decoder_num_heads=2, normalize_target=True)
module = PretrainModule(net, TubeMasking(0.75), batch_size=2,
                        optim=dict(base_lr=0.5, warmup_epochs=1, min_lr=1e-4, weight_decay=0.05,
                                   betas=[0.9, 0.95]))
checkpoint = AtomicModelCheckpoint(dirpath=f"{out}/checkpoints", save_last=True, save_top_k=0,
                                   every_n_train_steps=2, enable_version_counter=False)
# Probe comes after PreemptionCheckpoint: the signal Probe sends after step 9 is seen by
# PreemptionCheckpoint after step 10 (the step in progress when it arrived)
callbacks = [checkpoint, ResumeDataLoader(), PreemptionCheckpoint(), Probe()]
trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=3, logger=False,
                    enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                    callbacks=callbacks, default_root_dir=out)
ckpt = resolve_ckpt_path(None, out, auto_resume=True)  # train.py's rule: the folder's last.ckpt
assert (ckpt is not None) == (mode == "resume"), ckpt
trainer.fit(module, datamodule=Data(), ckpt_path=ckpt)
torch.save(state(trainer, module), f"{out}/final_state.pt")
'''


def run(
    script: Path, mode: str, out: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
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


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The script and the folder of one unbroken run (18 steps)."""
    folder = tmp_path_factory.mktemp("resume")
    script = folder / "run.py"
    script.write_text(SCRIPT)
    full = folder / "full"
    full.mkdir()
    proc = run(script, "full", full)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return script, full


def resume_and_compare(script: Path, broken: Path, full: Path, killed: list, step: int) -> None:
    """Resume the run in ``broken`` and check it against the unbroken run in ``full``: it starts
    at ``step`` with the unbroken run's state there, takes the same batches, ends the same."""
    proc = run(script, "resume", broken)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "not resumable" not in proc.stderr  # Lightning's mid-epoch warning is gone

    # resumed at the checkpoint's step (epoch 1, after step - 6 of its 6 batches) ...
    resumed = torch.load(broken / "resumed_state.pt", weights_only=False)
    snapshot = torch.load(full / f"snap_state_{step}.pt", weights_only=False)
    assert (resumed["global_step"], resumed["epoch"]) == (step, 1)
    # ... with the unbroken run's weights, AdamW moments and lr-scheduler state at that step
    assert_same(resumed, snapshot, f"state at step {step}")

    # the resumed run takes exactly the batches the unbroken one took from that step on
    unbroken_batches = batches(full)
    after = batches(broken)[len(killed) :]
    assert after == unbroken_batches[step:]
    assert after[0][:3] == [step, 1, step - 6]  # batch_idx continues mid-epoch

    # and ends with the same weights, optimizer and scheduler, bit for bit
    final_full = torch.load(full / "final_state.pt", weights_only=False)
    final_resumed = torch.load(broken / "final_state.pt", weights_only=False)
    assert final_full["global_step"] == 18
    assert_same(final_resumed, final_full, "final state")


def test_sigkill_mid_epoch_then_resume_matches_unbroken_run(
    unbroken: tuple[Path, Path], tmp_path: Path
) -> None:
    script, full = unbroken
    proc = run(script, "kill", tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    assert not (tmp_path / "final_state.pt").exists()
    killed = batches(tmp_path)
    # it died right after optimizer step 9 (epoch 1, batch 3 of 6), one step past last.ckpt
    assert killed[-1][:3] == [8, 1, 2]
    resume_and_compare(script, tmp_path, full, killed, step=8)


def test_sigkill_while_writing_last_ckpt_keeps_the_previous_one(
    unbroken: tuple[Path, Path], tmp_path: Path
) -> None:
    script, full = unbroken
    proc = run(script, "killwrite", tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    half = tmp_path / "checkpoints" / "last.ckpt.partial"
    assert half.is_file()  # the write that was cut ...
    with pytest.raises(Exception):  # noqa: B017 (any error: a truncated zip archive)
        torch.load(half, weights_only=False)
    # ... never touched last.ckpt, which still holds step 8
    assert torch.load(last, weights_only=False)["global_step"] == 8
    killed = batches(tmp_path)
    assert killed[-1][:3] == [9, 1, 3]
    resume_and_compare(script, tmp_path, full, killed, step=8)
    assert not half.exists()  # the next write cleared it


def test_slurm_preemption_checkpoints_the_current_step_requeues_and_resumes(
    unbroken: tuple[Path, Path], tmp_path: Path
) -> None:
    script, full = unbroken
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"  # a stand-in that records how it was called
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol_calls\n')
    scontrol.chmod(0o755)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    slurm = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "videomae",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
    }
    proc = run(script, "preempt", run_dir, env=slurm)
    # the signal came during step 10 (after step 9's hook had run): the checkpoint is of step 10,
    # the step in progress (not the periodic one of step 8), then the requeue and the exit
    assert proc.returncode == 128 + signal.SIGUSR2, proc.stderr[-4000:]
    assert (tmp_path / "scontrol_calls").read_text().split() == ["requeue", "4242"]
    assert "SIGUSR2 at step 10" in proc.stderr and "requeued SLURM job 4242" in proc.stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 10
    killed = batches(run_dir)
    assert killed[-1][:3] == [9, 1, 3]
    # the requeued job: same command, same folder
    resume_and_compare(script, run_dir, full, killed, step=10)


@pytest.mark.parametrize("dummy", [None])
def test_plain_loader_resume_is_not_exact_without_the_sampler(dummy: None) -> None:
    """What Lightning does with a plain shuffled DataLoader: the restored run restarts the epoch
    from its first batch, so it cannot match (the reason for ResumableSampler)."""
    from videomae.callbacks.resume import _resumable_samplers

    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=2, shuffle=True)
    assert _resumable_samplers(loader) == []


def test_ranks_agree_on_a_signal_one_step_later_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """With several ranks on CUDA the all-reduced signal is read at the next step (its copy to
    the host has landed by then): every rank acts on the same step's agreement without the host
    waiting for the device each step. Here the collective and the CUDA copy are stood in for."""
    import signal as signals
    from types import SimpleNamespace

    from videomae.callbacks import preemption

    class Event:
        def __init__(self) -> None:
            self.waited = False

        def synchronize(self) -> None:
            self.waited = True

    events: list[Event] = []

    def copy(value: torch.Tensor):
        events.append(Event())
        return value.clone(), events[-1]

    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, op=None: tensor)
    monkeypatch.setattr(preemption, "copy_to_host", copy)
    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(root_device="cpu"))
    callback = preemption.PreemptionCheckpoint()
    assert callback._agreed_signal(trainer) is None  # step 1: nothing in flight yet
    callback.received = int(signals.SIGUSR2)
    assert callback._agreed_signal(trainer) is None  # step 2 reads step 1's agreement
    assert callback._agreed_signal(trainer) == signals.SIGUSR2  # step 3 reads step 2's
    assert [e.waited for e in events] == [True, True, False]
    # an epoch's last step: its agreement is read at the epoch's end, before validation
    acted: list[int] = []
    monkeypatch.setattr(callback, "_act", lambda trainer, signum: acted.append(signum))
    callback.on_train_epoch_end(trainer, None)
    assert acted == [signals.SIGUSR2] and events[2].waited and callback._in_flight is None
