"""eval.py: a fine-tuning checkpoint is tested on every view and writes its files; a pretraining
checkpoint keeps the validation loss. Runs the tiny model on the small real clips of the
``video_folder`` fixture (6 videos, 3 classes); the pretrain -> fine-tune -> eval run on the
generated set is ``slow``."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning as L
import pytest
from omegaconf import DictConfig

from videomae.evaluate import evaluate, has_test_loop
from videomae.modules.finetune import FinetuneModule
from videomae.modules.pretrain import PretrainModule
from videomae.train import build
from videomae.utils.config import compose_run_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
FIT_STEPS = [
    "+trainer.max_steps=2",
    "trainer.max_epochs=1",
    "+trainer.limit_val_batches=0",
    "+model.optim.warmup_steps=1",
]


def compose_run(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """A run config as ``python {train,eval}.py OVERRIDES`` composes it, writing to output_dir."""
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    return compose_run_config(CONFIGS, overrides, output_dir, name)


def small_data(root: Path, img_size: int = 32) -> list[str]:
    """Overrides: the video_folder clips, tiny clips, no workers, the CPU, no checkpoints."""
    return [
        "data=custom",
        f"data.root={root}",
        "data.num_classes=3",
        f"data.img_size={img_size}",
        "data.num_frames=4",
        "data.sampling_rate=2",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "trainer=cpu",
        "callbacks=none",
        "logger=csv",
        "extras.print_config=false",
    ]


def fit_checkpoint(cfg: DictConfig, path: Path) -> L.LightningModule:
    """Build the run, train one step, save a checkpoint."""
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    trainer.save_checkpoint(path)
    return model


def test_has_test_loop() -> None:
    assert has_test_loop.__doc__
    assert FinetuneModule.test_step is not L.LightningModule.test_step
    assert PretrainModule.test_step is L.LightningModule.test_step


@pytest.fixture(scope="module")
def pretrain_ckpt(tmp_path_factory: pytest.TempPathFactory, video_folder: Path) -> Path:
    """A pretraining checkpoint (two steps of synthetic_pretrain on the small clips, 64 px)."""
    folder = tmp_path_factory.mktemp("pretrain")
    cfg = compose_run(
        "train.yaml",
        ["experiment=synthetic_pretrain", *small_data(video_folder, img_size=64), *FIT_STEPS],
        folder / "run",
    )
    fit_checkpoint(cfg, folder / "pre.ckpt")
    return folder / "pre.ckpt"


def test_pretrain_finetune_eval_pipeline_tests_every_view_and_writes_files(
    tmp_path: Path, video_folder: Path, pretrain_ckpt: Path
) -> None:
    data = small_data(video_folder)
    train_cfg = compose_run(
        "train.yaml",
        ["experiment=synthetic_finetune", *data, *FIT_STEPS, f"model.init_from={pretrain_ckpt}"],
        tmp_path / "train",
    )
    assert train_cfg.model.net._target_.endswith("VideoMAEClassifier")
    model = fit_checkpoint(train_cfg, tmp_path / "ft.ckpt")
    # the encoder came from the pretraining run (64 px there, 32 px here: positions rebuilt)
    assert model.init_report["unexpected"] == []
    assert all(k.startswith(("head.", "fc_norm.")) for k in model.init_report["missing"])

    views = ["data.test_num_clips=2", "data.test_num_crops=3"]
    eval_cfg = compose_run(
        "eval.yaml",
        ["experiment=synthetic_finetune", *data, *views, f"ckpt_path={tmp_path / 'ft.ckpt'}"],
        tmp_path / "eval",
    )
    metrics = evaluate(eval_cfg)
    assert {"test/acc1", "test/acc5", "test/mean_class_acc"} <= set(metrics)
    folder = tmp_path / "eval"
    rows = list(csv.DictReader((folder / "predictions.csv").open()))
    # the val list (no test list): 6 videos, each exactly once, paths of the list
    assert sorted(r["video"] for r in rows) == sorted(
        str(p) for p in (video_folder / "videos").rglob("*.*")
    )
    acc1 = sum(r["pred_1"] == r["label"] for r in rows) / len(rows)
    assert metrics["test/acc1"] == pytest.approx(acc1)
    per_class = list(csv.DictReader((folder / "per_class_accuracy.csv").open()))
    assert [int(r["videos"]) for r in per_class] == [2, 2, 2]
    assert (folder / "confusion_matrix.png").stat().st_size > 1000


def test_eval_pretraining_checkpoint_reports_val_loss(
    tmp_path: Path, video_folder: Path, pretrain_ckpt: Path
) -> None:
    data = small_data(video_folder, img_size=64)
    eval_cfg = compose_run(
        "eval.yaml",
        ["experiment=synthetic_pretrain", *data, f"ckpt_path={pretrain_ckpt}"],
        tmp_path / "eval",
    )
    metrics = evaluate(eval_cfg)
    assert set(metrics) == {"val/loss"} and metrics["val/loss"] > 0
    assert not (tmp_path / "eval" / "predictions.csv").exists()


@pytest.mark.slow
def test_pretrain_finetune_eval_on_the_generated_set_beats_chance(tmp_path: Path) -> None:
    """The embedded pretraining run, then synthetic_finetune from its checkpoint, then eval.py:
    the test accuracy (8 drift directions, every view) is far above chance (12.5%): the same
    two runs from the command line gave 0.91 (2026-11-24). About 6.5 minutes on 2 cores."""
    common = [
        f"paths.data_dir={tmp_path / 'data'}",
        "trainer=cpu",
        "callbacks=none",
        "extras.print_config=false",
    ]
    pre_cfg = compose_run(
        "train.yaml", ["experiment=synthetic_pretrain", *common], tmp_path / "pre"
    )
    fit_checkpoint(pre_cfg, tmp_path / "pre.ckpt")

    ft_cfg = compose_run(
        "train.yaml",
        ["experiment=synthetic_finetune", *common, f"model.init_from={tmp_path / 'pre.ckpt'}"],
        tmp_path / "ft",
    )
    datamodule, model, trainer = build(ft_cfg)
    assert model.init_report is not None and model.init_report["unexpected"] == []
    trainer.fit(model, datamodule=datamodule)
    trainer.save_checkpoint(tmp_path / "ft.ckpt")
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]

    eval_cfg = compose_run(
        "eval.yaml",
        ["experiment=synthetic_finetune", *common, f"ckpt_path={tmp_path / 'ft.ckpt'}"],
        tmp_path / "eval",
    )
    metrics = evaluate(eval_cfg)
    assert metrics["test/acc1"] == pytest.approx(tested["test/acc1"])
    assert metrics["test/acc1"] >= 0.5, metrics  # chance: 0.125
    rows = list(csv.DictReader((tmp_path / "eval" / "predictions.csv").open()))
    assert len(rows) == 80
