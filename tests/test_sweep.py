"""Sweeps through the real entry point: a two-trial Optuna search offline, and a failing job that
does not end a multirun."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from test_train import SMALL, assert_ok, run

TINY_RUN = [
    *SMALL,
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "model.optim.warmup_epochs=0",
    "logger=csv",
    "callbacks.reconstruction=null",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


def test_two_trial_optuna_search(tmp_path: Path, data_dir: Path) -> None:
    sweep_dir = tmp_path / "search"
    args = [
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_RUN,
    ]
    proc = run("train.py", args, tmp_path / "unused", data_dir, timeout=400)
    assert_ok(proc)
    trials = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(trials) == 2  # one folder per trial
    for trial in trials:
        assert (trial / "csv" / "version_0" / "metrics.csv").is_file()
        assert (trial / ".hydra" / "overrides.yaml").is_file()
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna"
    assert set(results["best_params"]) == {"model.optim.base_lr", "masking.ratio"}
    assert math.isfinite(results["best_value"])
    assert "Directions: ['minimize']" in proc.stdout + proc.stderr  # from val/loss
    # the study is stored in the sweep folder, so running the command again continues it
    import optuna

    study = optuna.load_study(study_name="train_search", storage=f"sqlite:///{sweep_dir}/optuna.db")
    assert len(study.trials) == 2


def test_failed_job_does_not_end_the_sweep(tmp_path: Path, data_dir: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    # job 0 fails in the config check (ratio 1.5), job 1 trains
    args = [
        "hydra.mode=MULTIRUN",
        f"hydra.sweep.dir={sweep_dir}",
        "masking.ratio=1.5,0.75",
        *TINY_RUN,
    ]
    proc = run("train.py", args, tmp_path / "unused", data_dir, timeout=400)
    assert_ok(proc)
    log0 = (sweep_dir / "0" / "train.log").read_text()
    assert "this sweep job failed" in log0 and "masking.ratio" in log0
    assert f"val/loss={math.inf}" in log0
    assert (sweep_dir / "1" / "checkpoints" / "last.ckpt").is_file()


def test_a_missing_optimized_metric_is_an_error_only_in_a_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import videomae.train as train_module

    metrics = {"train/loss": 0.5}
    monkeypatch.setattr(train_module, "in_multirun", lambda: False)
    assert train_module.metric_for_sweep(metrics, "val/loss") is None  # a run without validation
    assert train_module.metric_for_sweep({"val/loss": 0.25}, "val/loss") == 0.25
    monkeypatch.setattr(train_module, "in_multirun", lambda: True)
    with pytest.raises(KeyError, match=r"optimized_metric 'val/loss' was not logged"):
        train_module.metric_for_sweep(metrics, "val/loss")
