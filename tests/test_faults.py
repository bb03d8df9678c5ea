"""Faults that must lose nothing: sharded (FSDP) checkpoints found and read, checkpoint swaps
that a kill cannot corrupt, the NaN/inf policy. (Kills and preemption mid-run: test_resume.py;
runs without validation and short runs: test_train.py.)

FSDP itself needs CUDA, so the sharded directories here are written the way Lightning's
``FSDPStrategy(state_dict_type="sharded")`` writes them: ``torch.distributed.checkpoint`` shards
of ``{"model": ..., "optimizer_0": ...}`` plus ``meta.pt`` with the rest of the checkpoint.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.utils.data import DataLoader

from test_callbacks import TINY
from videomae.callbacks.checkpoint import PARTIAL, swap_into_place
from videomae.callbacks.nonfinite import NonFiniteGuard, NonFiniteLossError
from videomae.callbacks.resume import find_last_checkpoint, resolve_ckpt_path
from videomae.checkpoints import is_sharded_checkpoint, load, read_sharded
from videomae.cli.convert import main as convert_main
from videomae.models.masking import TubeMasking
from videomae.models.pretrain import VideoMAEPretrain
from videomae.modules.pretrain import PretrainModule


def write_sharded(path: Path, net: VideoMAEPretrain, step: int = 7) -> Path:
    """A sharded checkpoint directory of ``net`` as Lightning's FSDP strategy writes it."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    optimizer = {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 0.1}]}
    dcp.save({"model": state, "optimizer_0": optimizer}, checkpoint_id=path)
    meta = {
        "epoch": 1,
        "global_step": step,
        "videomae": {"kind": "pretrain", "config": dict(net.config)},
        "hyper_parameters": {"batch_size": 2},
    }
    torch.save(meta, path / "meta.pt")
    return path


@pytest.fixture
def net() -> VideoMAEPretrain:
    torch.manual_seed(0)
    return VideoMAEPretrain(**TINY)


# ------------------------------------------------------------------------------------------
# sharded checkpoints: resume rule, reading, converting
# ------------------------------------------------------------------------------------------


def test_resume_rule_finds_a_sharded_last_checkpoint(tmp_path: Path, net: VideoMAEPretrain) -> None:
    run = tmp_path / "run"
    last = write_sharded(run / "checkpoints" / "last.ckpt", net)
    assert is_sharded_checkpoint(last)
    assert resolve_ckpt_path(None, run, auto_resume=True) == str(last)  # a requeued FSDP job
    assert resolve_ckpt_path("last", run, auto_resume=False) == str(last)
    assert resolve_ckpt_path(str(last), tmp_path, auto_resume=True) == str(last)  # ckpt_path=<dir>
    # a directory that is not a checkpoint is refused, naming it
    stray = tmp_path / "stray"
    stray.mkdir()
    with pytest.raises(FileNotFoundError, match=r"not a checkpoint.*stray"):
        resolve_ckpt_path(str(stray), run, auto_resume=True)


def test_models_load_and_convert_read_a_sharded_checkpoint(
    tmp_path: Path, net: VideoMAEPretrain
) -> None:
    path = write_sharded(tmp_path / "last.ckpt", net)
    checkpoint = read_sharded(path)
    assert checkpoint["global_step"] == 7 and checkpoint["hyper_parameters"] == {"batch_size": 2}
    loaded = load(path)
    assert isinstance(loaded, VideoMAEPretrain)
    for name, tensor in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name

    out = tmp_path / "portable.safetensors"
    assert convert_main([str(path), str(out)]) == 0
    again = load(out)
    for name, tensor in net.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


class _Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch hacked",))


def test_a_sharded_checkpoint_whose_metadata_would_run_code_is_refused(
    tmp_path: Path, net: VideoMAEPretrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_sharded(tmp_path / "bad.ckpt", net)
    (path / ".metadata").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ValueError, match=r"refused to read .*\.metadata.*posix\.system"):
        load(path)
    assert not (tmp_path / "hacked").exists()


def test_a_dotted_global_cannot_reach_past_the_metadata_allow_list(
    tmp_path: Path, net: VideoMAEPretrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Protocol 4 looks dotted names up attribute by attribute: from the allowed module
    ``torch.distributed.checkpoint.metadata`` the name ``os.system`` would reach ``os``."""
    monkeypatch.chdir(tmp_path)
    path = write_sharded(tmp_path / "bad.ckpt", net)

    def text(value: bytes) -> bytes:  # SHORT_BINUNICODE
        return b"\x8c" + bytes([len(value)]) + value

    module, name = b"torch.distributed.checkpoint.metadata", b"os.system"
    payload = b"\x80\x04" + text(module) + text(name) + b"\x93" + text(b"touch hacked") + b"\x85R."
    (path / ".metadata").write_bytes(payload)
    with pytest.raises(ValueError, match=r"refused to read .*os\.system is not allowed"):
        load(path)
    assert not (tmp_path / "hacked").exists()


def test_a_pickled_object_among_the_model_entries_is_refused(
    tmp_path: Path, net: VideoMAEPretrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch stores non-tensor entries as pickles and would unpickle them freely."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.ckpt"
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    dcp.save({"model": {**state, "net.extra": _Boom()}}, checkpoint_id=path)
    torch.save({"videomae": {"kind": "pretrain", "config": dict(net.config)}}, path / "meta.pt")
    with pytest.raises(ValueError, match=r"entry 'model\.net\.extra' is not a tensor"):
        read_sharded(path)
    assert not (tmp_path / "hacked").exists()


# ------------------------------------------------------------------------------------------
# swaps that a kill cannot corrupt
# ------------------------------------------------------------------------------------------


def test_swap_replaces_a_file_and_leaves_no_partial(tmp_path: Path) -> None:
    final = tmp_path / "last.ckpt"
    final.write_text("old")
    partial = tmp_path / f"last.ckpt{PARTIAL}"
    partial.write_text("new")
    swap_into_place(partial, final)
    assert final.read_text() == "new" and not partial.exists()


def test_swap_of_directories_and_a_kill_between_its_renames(
    tmp_path: Path, net: VideoMAEPretrain
) -> None:
    run = tmp_path / "run"
    final = write_sharded(run / "checkpoints" / "last.ckpt", net, step=7)
    partial = write_sharded(run / "checkpoints" / f"last.ckpt{PARTIAL}", net, step=9)
    swap_into_place(partial, final)
    assert read_sharded(final)["global_step"] == 9
    assert sorted(p.name for p in final.parent.iterdir()) == ["last.ckpt"]

    # killed after the old directory moved aside and before the new one moved in: the resume
    # takes the old one (complete) rather than starting over
    partial = write_sharded(run / "checkpoints" / f"last.ckpt{PARTIAL}", net, step=11)
    os.replace(final, final.with_name("last.ckpt.old"))
    assert find_last_checkpoint(run) == final.with_name("last.ckpt.old")
    resumed = resolve_ckpt_path(None, run, auto_resume=True)
    assert resumed is not None and read_sharded(Path(resumed))["global_step"] == 9
    # the next write, killed before its rename, must not take the old one with it
    real_replace = os.replace

    def killed(src: object, dst: object) -> None:
        raise KeyboardInterrupt("killed")

    os.replace = killed  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            swap_into_place(partial, final)
    finally:
        os.replace = real_replace
    assert find_last_checkpoint(run) == final.with_name("last.ckpt.old")
    # done without a kill, it completes the swap and clears the old one
    swap_into_place(partial, final)
    assert read_sharded(final)["global_step"] == 11
    assert sorted(p.name for p in final.parent.iterdir()) == ["last.ckpt"]


# ------------------------------------------------------------------------------------------
# NaN/inf policy
# ------------------------------------------------------------------------------------------


class _Poison(L.Callback):
    """Makes the loss NaN at the given global steps; records the weights after every step."""

    def __init__(self, steps: set[int]) -> None:
        self.steps = steps
        self.weights: list[torch.Tensor] = []
        self.handle = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            self.handle = pl_module.net.register_forward_hook(
                lambda module, args, out: (out[0] * float("nan"), out[1])
            )

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.weights.append(torch.cat([p.detach().flatten() for p in pl_module.parameters()]))


class _FusedAdamW(torch.optim.AdamW):
    """AdamW with the fused kernel, as the modules build it on CUDA (here on the CPU)."""

    def __init__(self, *args, fused=None, **kwargs) -> None:
        super().__init__(*args, fused=True, **kwargs)


def _fit(tmp_path: Path, poison: _Poison, guard: NonFiniteGuard, steps: int = 8) -> L.Trainer:
    torch.manual_seed(0)
    module = PretrainModule(
        VideoMAEPretrain(**TINY),
        TubeMasking(0.75),
        batch_size=2,
        optim=dict(base_lr=1e-3, warmup_steps=1, min_lr=0.0, weight_decay=0.05),
    )
    clips = [{"video": torch.randn(3, 4, 32, 32)} for _ in range(16)]
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=[guard, poison],
    )
    trainer.fit(module, train_dataloaders=DataLoader(clips, batch_size=2))
    return trainer


@pytest.fixture(params=["host", "fused"])
def optimizer_kind(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """``host``: the CPU's AdamW, the guard reads the norm at once and drops the gradients;
    ``fused``: a fused AdamW (ours on CUDA), skipped on the device through ``found_inf``."""
    if request.param == "fused":
        monkeypatch.setattr(torch.optim, "AdamW", _FusedAdamW)
    return request.param


def test_nonfinite_steps_are_skipped_counted_and_training_goes_on(
    tmp_path: Path, optimizer_kind: str
) -> None:
    poison, guard = _Poison({2, 3, 6}), NonFiniteGuard(max_consecutive=3)
    trainer = _fit(tmp_path, poison, guard)
    assert trainer.global_step == 8  # the run went on to its end
    weights = poison.weights
    for step in range(1, 8):  # weights[step] = after the step that started at global_step step
        changed = not torch.equal(weights[step], weights[step - 1])
        assert changed == (step not in {2, 3, 6}), step
    assert all(torch.isfinite(w).all() for w in weights)
    assert guard.skipped == 3
    assert trainer.callback_metrics["train/nonfinite_steps"] == 3.0
    optimizer = trainer.optimizers[0]
    assert bool(optimizer.defaults.get("fused")) == (optimizer_kind == "fused")
    steps = {int(state["step"]) for state in optimizer.state.values()}
    assert steps == {8 - 3}  # AdamW counted only the steps it took


def test_too_many_nonfinite_steps_in_a_row_stop_with_a_checkpoint(
    tmp_path: Path, optimizer_kind: str
) -> None:
    poison, guard = _Poison({2, 3, 4, 5}), NonFiniteGuard(max_consecutive=3)
    with pytest.raises(NonFiniteLossError, match=r"3 optimizer steps in a row \(steps 2-4") as err:
        _fit(tmp_path, poison, guard)
    saved = tmp_path / "checkpoints" / "nonfinite_step_000004.ckpt"
    assert str(saved) in str(err.value)
    state = torch.load(saved, weights_only=False)["state_dict"]
    kept = torch.cat([v.flatten() for v in state.values()])
    assert torch.equal(kept, poison.weights[1])  # the weights of the last finite step


def test_device_flags_are_counted_a_step_late_and_the_stop_keeps_its_streak(
    tmp_path: Path,
) -> None:
    """On CUDA each step's flag comes back by a non-blocking copy: the guard reads the previous
    step's at each step (so every rank decides at the same step), all of them at a checkpoint;
    a stop reached while a checkpoint reads the flags comes at the next step and names the
    streak as it was, though a later finite step has reset the count since."""
    from types import SimpleNamespace

    class Event:
        def __init__(self) -> None:
            self.waited = False

        def synchronize(self) -> None:
            self.waited = True

    guard = NonFiniteGuard(max_consecutive=2)
    events = [Event() for _ in range(3)]
    for step, (flag, event) in enumerate(zip((1.0, 1.0, 0.0), events, strict=True)):
        guard._pending.append((step, 0, torch.tensor(flag), event))
        guard._read_flags(None, keep=1)
    assert (guard.skipped, guard.in_a_row, len(guard._pending)) == (2, 2, 1)
    assert [e.waited for e in events] == [True, True, False]
    assert guard.state_dict() == {"skipped": 2, "in_a_row": 0, "first": None}  # reads all
    assert events[2].waited and not guard._pending
    saved: list[str] = []
    trainer = SimpleNamespace(checkpoint_callback=None, default_root_dir=str(tmp_path))
    from videomae.callbacks import nonfinite

    original = nonfinite.save_atomically
    nonfinite.save_atomically = lambda trainer, path: saved.append(path)
    try:
        with pytest.raises(NonFiniteLossError, match=r"for 2 optimizer steps in a row \(steps 0-1"):
            guard._read_flags(trainer, keep=1)  # the next step: the stop noted at the checkpoint
    finally:
        nonfinite.save_atomically = original
    assert saved == [str(tmp_path / "checkpoints" / "nonfinite_step_000001.ckpt")]
