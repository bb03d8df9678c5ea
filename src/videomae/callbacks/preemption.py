"""Preemption and time limits: checkpoint at the current step, requeue, exit.

The one mechanism of this project (it replaces, while training runs, the handlers that
submitit and Lightning's ``SLURMEnvironment`` install for the same signals; Lightning restores
them when ``fit`` ends):

- SLURM sends a *requeue signal* (``SIGUSR2``, asked for by the submitit launcher's
  ``signal_delay_s``, or ``SIGUSR1``, Lightning's default) before a time limit or a preemption.
  The handler only notes it. After the current optimizer step every rank agrees (any rank that
  got it counts; on CUDA with several ranks the agreement is read one step later, so that the
  host never waits for the device), ``checkpoints/last.ckpt`` is written at that step
  (atomically, as :class:`~videomae.callbacks.checkpoint.AtomicModelCheckpoint` does), rank
  zero runs ``scontrol requeue <job>`` when the process runs under SLURM, and every rank exits
  with status ``128 + signal``. The requeued job starts in the same run folder,
  ``auto_resume`` finds the checkpoint, and :class:`~videomae.callbacks.resume.ResumeDataLoader`
  continues with the next batch: the same weights, optimizer, scheduler and data order as an
  unbroken run.
- A *stop signal* (``SIGTERM``: ``scancel``, or SLURM's preemption with a grace time) does the
  same without the requeue (whoever sent it decides whether the job comes back).

The handlers are installed at the sanity check (or the start of training) and act after the
next optimizer step: a signal during a validation pass is acted on after it, one after the last
step is passed on when fit ends. ``videomae.train`` builds the trainer with
``SLURMEnvironment(auto_requeue=False)`` under SLURM, so Lightning installs no requeue handler of
its own (and never resumes from its ``hpc_ckpt_*.ckpt``).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch

from videomae.callbacks.checkpoint import save_atomically
from videomae.callbacks.host_copy import copy_to_host

log = logging.getLogger(__name__)

__all__ = ["Preempted", "PreemptionCheckpoint", "slurm_job_id"]


class Preempted(SystemExit):
    """Raised on every rank after the preemption checkpoint; the exit status is 128 + signal."""


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes for this job (``<array job>_<task>`` in an array)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or None


def _signal_number(name: str | int) -> int:
    try:
        return int(name) if isinstance(name, int) else int(signal.Signals[str(name)])
    except (KeyError, ValueError) as error:
        raise ValueError(f"PreemptionCheckpoint: unknown signal {name!r}") from error


class PreemptionCheckpoint(L.Callback):
    """Checkpoint at the current step on a requeue or stop signal, requeue (SLURM), exit.

    Args:
        requeue_signals: signals that mean "requeue me" (names or numbers).
        stop_signals: signals that mean "stop": checkpoint and exit without a requeue.
        requeue: run ``scontrol requeue`` on a requeue signal when ``SLURM_JOB_ID`` is set.
    """

    def __init__(
        self,
        requeue_signals: list[str | int] | tuple[str | int, ...] = ("SIGUSR1", "SIGUSR2"),
        stop_signals: list[str | int] | tuple[str | int, ...] = ("SIGTERM",),
        requeue: bool = True,
    ) -> None:
        super().__init__()
        self.requeue_signals = {_signal_number(s) for s in requeue_signals}
        self.stop_signals = {_signal_number(s) for s in stop_signals} - self.requeue_signals
        self.requeue = requeue
        self.received: int | None = None
        self._last_step = -1
        self._in_flight: tuple[torch.Tensor, Any] | None = None  # last step's agreement (CUDA)

    def _note(self, signum: int, frame: Any) -> None:
        """The signal handler: only remember the signal (acted on after the optimizer step)."""
        if self.received is None or signum in self.requeue_signals:
            self.received = signum

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("PreemptionCheckpoint: not in the main thread; signals are not handled")
            return
        for signum in self.requeue_signals | self.stop_signals:
            signal.signal(signum, self._note)

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the handlers (after Lightning's, which it restores when fit ends)."""
        self._install()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Install the handlers (when there was no sanity check)."""
        self._last_step = trainer.global_step
        self._in_flight = None
        self._install()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Act on the last step's agreement still on its way (CUDA, several ranks) before the
        epoch's validation and checkpoints, at the same point on every rank."""
        signum = self._landed()
        if signum is not None:
            self._act(trainer, signum)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        """After each optimizer step: if any rank got a signal, checkpoint, requeue, exit.
        Batches that only accumulate gradients are passed over (every rank alike)."""
        if trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        signum = self._agreed_signal(trainer)
        if signum is not None:
            self._act(trainer, signum)

    def _act(self, trainer: L.Trainer, signum: int) -> None:
        """Checkpoint at the current step, requeue (SLURM, requeue signals), exit everywhere."""
        path = _last_checkpoint_path(trainer)
        save_atomically(trainer, str(path))
        name = signal.Signals(signum).name
        what = f"{name} at step {trainer.global_step} (epoch {trainer.current_epoch})"
        requeued = ""
        if signum in self.requeue_signals and self.requeue and trainer.is_global_zero:
            requeued = _requeue()
        trainer.strategy.barrier("PreemptionCheckpoint.exit")
        if trainer.is_global_zero:
            log.warning("%s: saved %s%s; exiting (a relaunch continues)", what, path, requeued)
        raise Preempted(128 + signum)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A signal that came after the last optimizer step (the final validation, the last
        checkpoint) is passed on to the handler Lightning has restored by now (submitit's, or
        the default action)."""
        if self.received is not None:
            log.warning(
                "%s came after the last training step; passing it on",
                signal.Signals(self.received).name,
            )
            signum, self.received = self.received, None
            signal.raise_signal(signum)

    def _agreed_signal(self, trainer: L.Trainer) -> int | None:
        """The signal every rank acts on: the one any rank got (a requeue signal wins over a
        stop signal), or None. With several ranks, one small all-reduce (max) per step; on CUDA
        its result is read at the next step, when it has reached the host (every rank reads the
        same step's result, so all act at the same step, one step after the signal is seen)
        rather than waiting for the device every step."""
        code = 0
        if self.received is not None:
            code = self.received + (1000 if self.received in self.requeue_signals else 0)
        if trainer.world_size > 1:
            device = trainer.strategy.root_device
            agreed = torch.full((), code, dtype=torch.int64, device=device)
            torch.distributed.all_reduce(agreed, op=torch.distributed.ReduceOp.MAX)
            host, event = copy_to_host(agreed)
            if event is not None:  # CUDA: act on the previous step's agreement
                signum, self._in_flight = self._landed(), (host, event)
                return signum
            code = int(host.item())  # the CPU (gloo): the result is there
        return _decoded_signal(code)

    def _landed(self) -> int | None:
        """The signal of the agreement in flight (waiting on its copy: a step old, done unless
        the device lags that far), or None; nothing is in flight afterwards."""
        if self._in_flight is None:
            return None
        (host, event), self._in_flight = self._in_flight, None
        event.synchronize()
        return _decoded_signal(int(host.item()))


def _decoded_signal(code: int) -> int | None:
    """The signal number of an agreed code (requeue signals carry +1000 so that they win the
    max), or None for 0."""
    return code % 1000 if code else None


def _last_checkpoint_path(trainer: L.Trainer) -> Path:
    """``last.ckpt`` in the checkpoint callback's folder (else ``<root>/checkpoints``)."""
    callback = trainer.checkpoint_callback
    folder = getattr(callback, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
    return Path(folder) / "last.ckpt"


def _requeue() -> str:
    """Run ``scontrol requeue`` for this SLURM job; a phrase for the log."""
    job = slurm_job_id()
    if job is None:
        return " (not a SLURM job: no requeue)"
    if not re.fullmatch(r"[0-9_]+", job):
        return f" (SLURM job id {job!r} not understood: no requeue)"
    try:
        result = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"; scontrol requeue {job} failed: {error}"
    if result.returncode != 0:
        return f"; scontrol requeue {job} failed ({result.returncode}): {result.stderr.strip()}"
    return f"; requeued SLURM job {job}"
