"""W&B offline: the run folder holds the metrics and the reconstruction picture, the run is
named from the experiment and overrides, and the API key read from `.env` appears nowhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_train import ROOT, SMALL, assert_ok

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # 40 hex characters, like a real key


def test_offline_wandb_run_with_key_in_dotenv(tmp_path: Path) -> None:
    # a project root of its own: train.py copied (not linked: it finds .env next to itself)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "train.py", project / "train.py")
    (project / "configs").symlink_to(ROOT / "configs")
    (project / ".env").write_text(f"WANDB_API_KEY={FAKE_KEY}\nWANDB_PROJECT=test_project\n")
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    # the key is present, but no network here: WANDB_MODE forces offline (a real variable wins
    # over .env and over the key's "online")
    env.update(WANDB_MODE="offline", DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(ROOT / "src"))
    args = [
        *SMALL,
        f"hydra.run.dir={run_dir}",
        "trainer.max_epochs=1",
        "trainer.log_every_n_steps=1",
        "model.optim.warmup_epochs=0",
        "logger=[csv,wandb,tensorboard]",
        "callbacks.reconstruction.every_n_epochs=1",
        "callbacks.reconstruction.num_clips=2",
        "masking=tube_95",
    ]
    proc = subprocess.run(
        [sys.executable, str(project / "train.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert_ok(proc)

    (wandb_run,) = (run_dir / "wandb").glob("offline-run-*")
    (records,) = wandb_run.glob("run-*.wandb")
    data = records.read_bytes()
    for metric in (b"train/loss_step", b"val/loss", b"perf/clips_per_sec", b"batch_size/global"):
        assert metric in data, metric
    # the run name: experiment + overrides (the bookkeeping ones left out)
    assert b"synthetic_pretrain-" in data and b"masking=tube_95" in data
    assert b"test_project" in data  # WANDB_PROJECT from .env reached the logger
    pictures = list(wandb_run.glob("files/media/images/val/reconstruction_*.png"))
    assert pictures, sorted(str(p) for p in wandb_run.rglob("*"))
    assert (run_dir / "reconstructions" / "epoch_000.png").is_file()
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))

    # the key is in no file written anywhere (run folder, wandb files, logs) nor in the output
    leaks = []
    for path in tmp_path.rglob("*"):
        readable = path.is_file() and not path.is_symlink() and path.name != ".env"
        if readable and FAKE_KEY.encode() in path.read_bytes():
            leaks.append(str(path))
    assert not leaks
    assert FAKE_KEY not in proc.stdout + proc.stderr
