"""End-to-end runs of the entry points through Hydra, as a user types them (subprocesses)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# a small generated set and clip so that each run takes seconds on two cores
SMALL = [
    "data.synthetic.train_per_class=2",
    "data.synthetic.val_per_class=1",
    "data.synthetic.num_frames=24",
    "data.synthetic.height=64",
    "data.synthetic.width=64",
    "data.img_size=64",
    "data.num_frames=8",
    "data.sampling_rate=2",
    "data.batch_size=2",
    "data.num_workers=0",
    "extras.print_config=false",
    "callbacks.rich_progress_bar=null",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder per test module: the small synthetic set is generated once, on first use."""
    return tmp_path_factory.mktemp("data")


def run(
    script: str, args: list[str], run_dir: Path, data_dir: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run `python SCRIPT ARGS` from the repository with its run folder at run_dir (the tests'
    folder on PYTHONPATH, for their helper callbacks)."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "WANDB_MODE": "offline"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")]))
    env.pop("WANDB_API_KEY", None)
    cmd = [sys.executable, str(ROOT / script), f"hydra.run.dir={run_dir}", *args]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    files = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    assert files, f"no metrics.csv under {run_dir}"
    with open(files[-1]) as f:
        return list(csv.DictReader(f))


def test_fast_dev_run(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    # test=true on a pretraining model (no test loop) is skipped with a warning, not an error
    proc = run("train.py", [*SMALL, "debug=fdr", "test=true"], run_dir, data_dir)
    assert_ok(proc)
    assert "has no test loop; skipping the test" in (run_dir / "train.log").read_text()
    assert f"Run folder: {run_dir}" in proc.stdout
    assert (data_dir / "synthetic" / "train.csv").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_train_then_eval(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    args = [
        *SMALL,
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "model.optim.warmup_epochs=1",
        "logger=csv",
    ]
    proc = run("train.py", args, run_dir, data_dir)
    assert_ok(proc)
    rows = read_metrics(run_dir)
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"train/loss_step", "train/loss_epoch", "val/loss", "lr"} <= logged
    assert {"perf/clips_per_sec", "perf/tokens_per_sec", "perf/data_wait_frac"} <= logged
    assert {"batch_size/per_device", "batch_size/global", "lr/peak"} <= logged
    assert (run_dir / "reconstructions").is_dir()  # drawn at the end of fit
    lrs = [float(r["lr"]) for r in rows if r.get("lr")]
    assert max(lrs) > lrs[0]  # warmup raised the lr
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["videomae"]["kind"] == "pretrain"
    assert "net.encoder.blocks.0.attn.q_bias" in state["state_dict"]

    eval_dir = tmp_path / "eval"
    eval_args = [a for a in SMALL if not a.startswith("callbacks.")]
    proc = run("eval.py", [*eval_args, f"ckpt_path={ckpt}"], eval_dir, data_dir)
    assert_ok(proc)
    assert "val/loss" in proc.stdout + proc.stderr


def test_ddp_sim_two_cpu_processes(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    args = [*SMALL, "trainer=ddp_sim", "trainer.max_epochs=1", "logger=csv"]
    proc = run("train.py", args, run_dir, data_dir, timeout=400)
    assert_ok(proc)
    log_text = (run_dir / "train.log").read_text()
    assert "2 per device, 4 global" in log_text  # batch 2 on each of 2 processes
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list(tmp_path.iterdir())) == 1  # one run folder for both processes
    # one set of checkpoints and one metrics file, written by rank zero
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["version_0"]
    rows = read_metrics(run_dir)
    sizes = [r for r in rows if r.get("batch_size/global")]
    assert len(sizes) == 1
    assert float(sizes[0]["batch_size/global"]) == 4.0
    assert float(sizes[0]["batch_size/per_device"]) == 2.0


def test_nan_on_one_ddp_rank_is_skipped_by_both(tmp_path: Path, data_dir: Path) -> None:
    """Rank 1's loss is NaN at steps 2 and 3: both ranks skip those steps (weights unchanged),
    stay identical, count them, and train on."""
    run_dir = tmp_path / "run"
    args = [
        *SMALL,
        "trainer=ddp_sim",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "validate=false",
        "+trainer.limit_val_batches=0",
        "+callbacks.poison._target_=fault_helpers.PoisonRank",
        "+callbacks.poison.rank=1",
        "+callbacks.poison.steps=[2,3]",
    ]
    proc = run("train.py", args, run_dir, data_dir, timeout=400)
    assert_ok(proc)
    ranks = [
        [json.loads(line) for line in (run_dir / f"weights_rank{r}.jsonl").read_text().splitlines()]
        for r in (0, 1)
    ]
    assert ranks[0] == ranks[1]  # the same weights on both ranks after every step
    steps = ranks[0]
    assert [s for s, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) == 8
    for (step, total), (_, before) in zip(steps[1:], steps, strict=False):
        # the step that started at global step s is recorded as s + 1
        assert (total == before) == (step - 1 in {2, 3}), step
    rows = read_metrics(run_dir)
    counts = [float(r["train/nonfinite_steps"]) for r in rows if r.get("train/nonfinite_steps")]
    assert counts[-1] == 2.0
    assert (
        "NaN/inf gradients, step skipped (2 in a row, 2 in all)"
        in (run_dir / "train.log").read_text()
    )


def test_short_run_without_validation_then_relaunched_ends_cleanly(
    tmp_path: Path, data_dir: Path
) -> None:
    """A smoke run bounded by max_steps whose warmup (one epoch, 8 steps) is longer: shortened
    with a warning; no validation: exit 0; relaunched in its folder when finished: exit 0."""
    run_dir = tmp_path / "run"
    args = [*SMALL, "++trainer.max_steps=6", "validate=false", "+trainer.limit_val_batches=0"]
    proc = run("train.py", args, run_dir, data_dir)
    assert_ok(proc)
    log_text = (run_dir / "train.log").read_text()
    assert "the warmup (8 steps, model.optim.warmup_epochs) is longer than this run" in log_text
    assert "(trainer.max_steps 6): the warmup is shortened to 6 steps" in log_text
    assert "optimized_metric val/loss was not logged by this run" in log_text
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    proc = run("train.py", args, run_dir, data_dir)  # the same command again: nothing to do
    assert_ok(proc)
    assert "nothing to train:" in (run_dir / "train.log").read_text()
    assert (
        "step 6; trainer.max_epochs=10, trainer.max_steps=6)" in (run_dir / "train.log").read_text()
    )


def test_fsdp_vs_ddp_benchmark_runs_its_command_on_the_cpu() -> None:
    """benchmarks/fsdp_vs_ddp.py --dry-run: the benchmark's own train.py command (data=random,
    no validation) with a tiny model on the CPU, its table printed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fsdp_vs_ddp.py"), "--dry-run", "--steps", "12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert_ok(proc)
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| cpu |"))
    assert float(row.split("|")[2]) > 0  # clips/s measured


def test_missing_real_data_set_stops_at_once(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    start = time.monotonic()
    proc = run("train.py", ["experiment=ssv2_pretrain"], tmp_path / "run", empty)
    assert proc.returncode != 0
    assert time.monotonic() - start < 60
    err = proc.stderr
    assert str(empty / "ssv2") in err
    assert "Real data sets" in err  # how to prepare it


def test_bad_config_stops_before_work(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    proc = run("train.py", ["masking.ratio=1.5"], tmp_path / "run", empty)
    assert proc.returncode != 0
    assert "masking.ratio" in proc.stderr
    assert not (empty / "synthetic").exists()  # nothing generated


@pytest.mark.slow
def test_embedded_default_run(tmp_path: Path) -> None:
    """`python train.py` with no arguments: set generated, under 5 minutes, loss clearly lower."""
    start = time.monotonic()
    run_dir = tmp_path / "run"
    proc = run("train.py", [], run_dir, tmp_path / "data", timeout=600)
    elapsed = time.monotonic() - start
    assert_ok(proc)
    assert f"Run folder: {run_dir}" in proc.stdout
    assert elapsed < 300, f"the default run took {elapsed:.0f} s"
    rows = read_metrics(run_dir)
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert losses[-1] < 0.2 * losses[0]
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert val[-1] < val[0]
