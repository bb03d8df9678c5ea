"""The first hour of a new user: mistakes told at once in one short block, no run folder left by a
run that did no work, eval.py reading what a checkpoint is, quiet logs (subprocesses, as typed)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from test_train import SMALL, assert_ok, run
from videomae.checkpoints.files import RUN_KEY, read_record
from videomae.errors import UserError, user_message
from videomae.utils.preflight import EXIT_USER_ERROR, RunGuard
from videomae.utils.runs import format_metrics, max_workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data folder for the module (the small synthetic set, generated on first use)."""
    return tmp_path_factory.mktemp("data")


def fake_checkpoint(path: Path, kind: str, experiment: str | None, embed_dim: int = 192) -> Path:
    """A file holding only what :func:`read_record` reads: enough for the checks that run
    before any work (a run that got past them would fail to load it)."""
    content: dict = {"videomae": {"kind": kind, "config": {"embed_dim": embed_dim}}}
    if experiment:
        content[RUN_KEY] = {"experiment": experiment, "overrides": ["data.num_frames=8"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


def assert_user_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit status 2, the short block last on stderr with every ``expected`` text, no
    traceback, no config tree; returns the block."""
    assert proc.returncode == EXIT_USER_ERROR, f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    err = proc.stderr.rstrip()
    block = err[err.rindex("Error: ") :]
    for text in expected:
        assert text in block, f"{text!r} not in:\n{block}"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "CONFIG" not in proc.stdout
    assert len(block.splitlines()) <= 5, block
    return block


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["masking.ratio=1.5"], ["masking.ratio must be in (0, 1), got 1.5"]),
        (
            ["data.batchsize=4"],
            ["data.batchsize: unknown key; did you mean data.batch_size? Type: data.batch_size=4"],
        ),
        (["+data.batchsize=4"], ["data.batchsize: unknown key; did you mean data.batch_size?"]),
        (["trainer.max_epoch=3"], ["did you mean trainer.max_epochs? Type: trainer.max_epochs=3"]),
        (["model.val_mask_seed=3"], ["to set it, add a +: +model.val_mask_seed=3"]),
        (["data.num_frames=7"], ["data.num_frames (7) must be divisible by backbone.tubelet_size"]),
        (
            ["experiment=ssv2_pretrian"],
            ["experiment=ssv2_pretrian: no such option; did you mean experiment=ssv2_pretrain?"],
        ),
        (["ckpt_path={tmp}/nope/last.ckpt"], ["ckpt_path: checkpoint not found: {tmp}/nope"]),
        (["experiment=ssv2_pretrain"], ["data.root: data set folder not found: {data}/ssv2"]),
        (["data=custom"], ["no value given for data.root; type data.root=<value>"]),
        (["foo.bar=1"], ["foo.bar: the config has no 'foo' to hold it"]),
    ],
)
def test_mistakes_are_told_at_once(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    fill = {"tmp": str(tmp_path), "data": str(data)}
    start = time.monotonic()
    proc = run("train.py", [a.format(**fill) for a in args], tmp_path / "run", data)
    elapsed = time.monotonic() - start
    assert_user_error(proc, *(e.format(**fill) for e in expected))
    assert elapsed < 20, f"{elapsed:.1f} s"  # ~1 s on an idle 2-core machine (README)
    assert not (tmp_path / "run").exists()  # no run folder
    assert not any(data.iterdir())  # nothing generated


def test_mistake_found_in_the_job_leaves_no_run_folder(tmp_path: Path, data_dir: Path) -> None:
    """A ratio that masks nothing on the token grid is found by the masking generator itself
    (after the heavy imports): the same short block, and the run folder is removed."""
    proc = run("train.py", [*SMALL, "masking.ratio=0.02"], tmp_path / "run", data_dir)
    assert_user_error(proc, "masking.ratio does not fit the token grid")
    assert not (tmp_path / "run").exists()


def test_checkpoint_of_the_wrong_kind(tmp_path: Path) -> None:
    pretrain = fake_checkpoint(tmp_path / "p" / "last.ckpt", "pretrain", "synthetic_pretrain")
    classifier = fake_checkpoint(tmp_path / "c" / "last.ckpt", "classifier", "synthetic_finetune")
    data = tmp_path / "data"
    proc = run(
        "train.py", ["experiment=synthetic_finetune", f"ckpt_path={pretrain}"], tmp_path / "r", data
    )
    assert_user_error(proc, "is a pretraining checkpoint", f"model.init_from={pretrain}")
    proc = run("train.py", [f"ckpt_path={classifier}"], tmp_path / "r", data)
    assert_user_error(
        proc,
        "is a fine-tuning checkpoint (trained with experiment=synthetic_finetune)",
        # the experiment and the model/data overrides it was trained with
        f"python train.py experiment=synthetic_finetune data.num_frames=8 ckpt_path={classifier}",
    )
    args = ["experiment=synthetic_pretrain", f"ckpt_path={classifier}"]
    proc = run("eval.py", args, tmp_path / "r", data)
    assert_user_error(
        proc,
        "but this run evaluates a pretraining model",
        "experiment= out",
        "or pass experiment=synthetic_finetune data.num_frames=8",
    )
    # the same kind of model, another network: the difference is named
    wide = fake_checkpoint(tmp_path / "w" / "last.ckpt", "classifier", "synthetic_finetune", 384)
    proc = run(
        "eval.py", ["experiment=synthetic_finetune", f"ckpt_path={wide}"], tmp_path / "r", data
    )
    assert_user_error(proc, "whose network is not this run's: embed_dim: 384 in the checkpoint")
    proc = run("eval.py", [], tmp_path / "r", data)
    assert_user_error(proc, "ckpt_path is required: python eval.py ckpt_path=<checkpoint>")
    assert not (tmp_path / "r").exists()


def test_broken_video_with_on_error_raise_is_one_line(tmp_path: Path, data_dir: Path) -> None:
    """A text file posing as a video, with data.on_error=raise, from a loader worker: the block
    names the file and its list line (not three chained worker tracebacks)."""
    proc = run("train.py", [*SMALL, "debug=fdr"], tmp_path / "gen", data_dir)
    assert_ok(proc)  # the small set, to borrow real videos from
    root = tmp_path / "set"
    root.mkdir()
    (root / "fake.mp4").write_text("hello, I am not a video\n")
    synthetic = data_dir / "synthetic"
    lines = (synthetic / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text(
        "fake.mp4 0\n" + "".join(f"{synthetic / line}\n" for line in lines)
    )
    args = [
        "data=custom",
        f"data.root={root}",
        "data.val_list=null",
        "data.on_error=raise",
        "data.num_workers=1",
        "data.img_size=64",
        "data.num_frames=8",
        "data.sampling_rate=2",
        "data.batch_size=2",
        "validate=false",
        "extras.print_config=false",
        "callbacks.rich_progress_bar=null",
    ]
    proc = run("train.py", args, tmp_path / "run", data_dir)
    block = assert_user_error(
        proc, f"cannot decode video {root / 'fake.mp4'}: not a video file", "list line 1"
    )
    assert "Original Traceback" not in block


def test_eval_reads_what_the_checkpoint_is(tmp_path: Path, data_dir: Path) -> None:
    """Fine-tune, then `eval.py ckpt_path=...` alone: the checkpoint's experiment and data
    overrides are used, the test files written; the logs have each line once, no tips, rounded
    numbers."""
    train_dir = tmp_path / "train"
    args = [*SMALL, "experiment=synthetic_finetune", "trainer.max_epochs=1", "test=false"]
    assert_ok(run("train.py", args, train_dir, data_dir))
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    record = read_record(ckpt)
    assert record is not None and record["kind"] == "classifier"
    assert record["experiment"] == "synthetic_finetune"
    assert "data.num_frames=8" in record["overrides"]
    assert not any(o.startswith("hydra.") for o in record["overrides"])

    eval_dir = tmp_path / "eval"
    # model.top_k is a key of the fine-tuning model only: checked after the completion
    args = [f"ckpt_path={ckpt}", "extras.print_config=false", "model.top_k=3"]
    proc = run("eval.py", args, eval_dir, data_dir)
    assert_ok(proc)
    assert "evaluating it with experiment=synthetic_finetune" in proc.stdout
    assert (eval_dir / "predictions.csv").is_file()
    assert (eval_dir / "confusion_matrix.png").is_file()
    output = proc.stdout + proc.stderr
    assert "💡" not in output and "\nINFO: " not in output and "v_num" not in output
    messages = re.findall(r"^\[[^]]+\]\[([^]]+)\]\[\w+\] - (.*)$", output, flags=re.M)
    assert messages, output
    assert len(messages) == len(set(messages)), "a log line printed twice"
    plain = [line for line in output.splitlines() if line and not line.startswith("[")]
    for _, message in messages:  # Lightning's own console handler no longer repeats them
        assert message not in plain
    metrics_line = next(m for _, m in messages if m.startswith("metrics: "))
    for number in re.findall(r"\d+\.\d+(?:e-?\d+)?", metrics_line):
        assert len(number.split("e")[0].replace(".", "").lstrip("0")) <= 4, metrics_line


def test_preflight_imports_neither_torch_nor_lightning(tmp_path: Path) -> None:
    """The checks before the job stay fast: composing, checking and reading a checkpoint's
    record import no torch and no Lightning."""
    ckpt = fake_checkpoint(tmp_path / "c.ckpt", "classifier", "synthetic_finetune")
    code = (
        "import os, sys\n"
        f"os.environ['PROJECT_ROOT'] = {str(ROOT)!r}\n"
        "from videomae.utils.preflight import compose, check\n"
        "from videomae.checkpoints.files import read_record\n"
        f"cfg = compose({str(ROOT / 'configs')!r}, 'train.yaml', ['hydra.run.dir={tmp_path}/r'])\n"
        "check(cfg)\n"
        f"assert read_record({str(ckpt)!r})['experiment'] == 'synthetic_finetune'\n"
        "heavy = [m for m in ('torch', 'lightning') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_run_guard_removes_only_the_folder_of_a_user_error_before_work(tmp_path: Path) -> None:
    def hydra_folder(name: str) -> Path:
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "config.yaml").write_text("{}")
        (folder / "train.log").write_text("")
        return folder

    fresh = hydra_folder("fresh")
    with pytest.raises(SystemExit) as exit_info, RunGuard(fresh, job_log="train.log"):
        raise UserError("data.root: data set folder not found: /x")
    assert exit_info.value.code == EXIT_USER_ERROR
    assert not fresh.exists()

    bug = hydra_folder("bug")  # a bug or an OOM: the folder and its log stay
    with pytest.raises(RuntimeError), RunGuard(bug, job_log="train.log"):
        raise RuntimeError("CUDA out of memory")
    assert (bug / "train.log").is_file()

    worked = hydra_folder("worked")
    with pytest.raises(SystemExit), RunGuard(worked, job_log="train.log") as guard:
        guard.worked = True
        raise UserError("a broken video with data.on_error=raise, after the first step")
    assert (worked / ".hydra").is_dir()

    resumed = hydra_folder("resumed")
    (resumed / "checkpoints").mkdir()
    with pytest.raises(SystemExit), RunGuard(resumed, job_log="train.log"):
        raise UserError("data.root: data set folder not found: /x")
    assert (resumed / "checkpoints").is_dir() and (resumed / "train.log").is_file()

    later = hydra_folder("later")  # written during the run (a logger's files): kept
    with pytest.raises(SystemExit), RunGuard(later, job_log="train.log"):
        (later / "csv").mkdir()
        raise UserError("data.train_list: the list has no videos")
    assert (later / "csv").is_dir() and (later / ".hydra").is_dir()


def test_an_error_raised_while_handling_a_user_error_keeps_its_traceback() -> None:
    from videomae.errors import find_user_error

    try:
        try:
            raise UserError("masking.ratio must be in (0, 1)")
        except UserError:
            raise RuntimeError("a bug in the clean-up") from None
    except RuntimeError as error:
        assert find_user_error(error) is None
    wrapped = RuntimeError("Error in call to target")
    wrapped.__cause__ = UserError("data.batch_size must be >= 1")
    assert isinstance(find_user_error(wrapped), UserError)


def test_sweeps_and_flags_pass_through_unchecked() -> None:
    """Multiruns (with -m, hydra.mode=MULTIRUN or an hparams_search config) are checked job by
    job inside Hydra: the command line comes back as it was, even with sweep syntax."""
    from videomae.utils.preflight import preflight

    configs = ROOT / "configs"
    for args in (
        ["hparams_search=optuna", "masking.ratio=0.75,0.9"],
        ["-m", "masking.ratio=0.75,0.9"],
        ["hydra.mode=MULTIRUN", "masking.ratio=0.75,0.9"],
        ["--cfg", "job"],
    ):
        assert preflight(configs, "train.yaml", args) == args


def test_user_message_of_an_error_from_a_loader_worker() -> None:
    """PyTorch rebuilds a worker's exception from its whole traceback: the block keeps the
    original message only."""
    from torch._utils import ExceptionWrapper

    from videomae.data.decoding import VideoDecodeError

    try:
        raise VideoDecodeError("/data/x.mp4", "not a video file")
    except VideoDecodeError:
        wrapper = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(VideoDecodeError) as info:
        wrapper.reraise()
    assert "Original Traceback" in str(info.value)
    assert user_message(info.value) == "cannot decode video /data/x.mp4: not a video file"


def test_numbers_for_reading_and_workers_for_the_machine() -> None:
    assert format_metrics({"test/acc5": 0.6000000238418579, "lr": 3.4218e-07, "b": 1295.3215}) == {
        "b": 1295.0,
        "lr": 3.422e-07,
        "test/acc5": 0.6,
    }
    import os

    cores = len(os.sched_getaffinity(0))
    assert max_workers(10) == min(10, cores)
    assert max_workers(1) == 1 and max_workers(0) == 0


@pytest.mark.parametrize(
    ("usable", "slurm_per_task", "processes", "expected"),
    [
        (16, None, 1, 15),  # one GPU, 16 cores: all but the process's own
        (96, None, 8, 11),  # 8 ranks sharing 96 cores: 12 each, less one
        (32, None, 8, 3),  # `taskset -c 0-31` on the launch command: the 8 ranks share it
        (12, "12", 8, 11),  # SLURM bound each rank to its task's 12 cores: its own
        (80, "10", 8, 9),  # SLURM without per-task binding: the ranks share the job's 80
        (128, None, 1, 16),  # at most 16
        (2, None, 1, 1),
        (1, None, 1, 0),  # one core: load in the process itself
        (4, None, 8, 0),  # more ranks than cores
    ],
)
def test_auto_workers_share_the_machine(
    monkeypatch: pytest.MonkeyPatch,
    usable: int,
    slurm_per_task: str | None,
    processes: int,
    expected: int,
) -> None:
    from videomae.utils import runs

    monkeypatch.setattr(runs, "usable_cores", lambda: usable)
    if slurm_per_task is None:
        monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    else:
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", slurm_per_task)
    assert runs.auto_workers(processes) == expected


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "400000 100000\n"}, 4),  # cgroup v2, Docker --cpus=4
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000\n"}, None),  # no quota
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # nothing to read
    ],
)
def test_cpu_quota_limits_the_usable_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], cpus: int | None
) -> None:
    from videomae.utils import runs

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert runs._cpu_quota(tmp_path) == cpus
    monkeypatch.setattr(runs, "_cpu_quota", lambda: 1)
    assert runs.usable_cores() == 1
