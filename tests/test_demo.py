"""`make demo` (videomae.demo): the job plan, the result files and their numbers."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from videomae import demo

ROOT = Path(__file__).resolve().parents[1]


def test_validation_interval_gives_about_five_points_and_the_last_step() -> None:
    """--finetune-steps N: validation every k steps, k dividing N, about N / 5."""
    for steps, every in ((300, 60), (2, 1), (7, 1), (12, 2), (40, 8)):
        jobs = demo.plan_jobs(Path("/x"), [0.9], [0], finetune_steps=steps)
        assert f"trainer.val_check_interval={every}" in jobs[-1].overrides, steps
        assert f"trainer.max_steps={steps}" in jobs[-1].overrides
        assert steps % every == 0


def test_plan_pretrains_once_then_fine_tunes_each_size_mask_and_seed(tmp_path: Path) -> None:
    """Folders, dependencies, launch order, labeled subsets and overrides of every job."""
    jobs = demo.plan_jobs(tmp_path, [0.75, 0.9], [0, 1], [2, 5], ["data.batch_size=4"], 3, 40)
    names = [(j.name, j.labeled, j.mask, j.seed) for j in jobs]
    # pretraining first (longest chain, shared by every size), then scratch, then fine-tuning
    assert names[:4] == [("pretrain", None, m, s) for m in (0.75, 0.9) for s in (0, 1)]
    assert names[4:8] == [("scratch", k, None, s) for k in (2, 5) for s in (0, 1)]
    assert names[8:] == [("finetune", k, m, s) for m in (0.75, 0.9) for s in (0, 1) for k in (2, 5)]
    by_name = {(j.name, j.labeled, j.mask, j.seed): j for j in jobs}
    for mask in (0.75, 0.9):
        for seed in (0, 1):
            pre = by_name["pretrain", None, mask, seed]
            assert pre.run_dir == tmp_path / f"mask_{mask:g}" / f"seed_{seed}" / "pretrain"
            assert f"masking.ratio={mask}" in pre.overrides
            assert "trainer.max_epochs=3" in pre.overrides
            assert not any("labeled_per_class" in o for o in pre.overrides)  # every video
            for k in (2, 5):
                fine = by_name["finetune", k, mask, seed]
                assert fine.after is pre
                assert fine.run_dir == tmp_path / f"labeled_{k}" / f"mask_{mask:g}" / f"seed_{seed}"
                ckpt = pre.run_dir / "checkpoints" / "last.ckpt"
                assert f"model.init_from={ckpt}" in fine.overrides
                assert "trainer.max_steps=40" in fine.overrides
                assert "trainer.val_check_interval=8" in fine.overrides
    for k in (2, 5):
        for seed in (0, 1):
            scratch = by_name["scratch", k, None, seed]
            assert scratch.after is None
            assert scratch.run_dir == tmp_path / f"labeled_{k}" / "scratch" / f"seed_{seed}"
            assert not any(o.startswith("model.init_from") for o in scratch.overrides)
            # the same labeled videos as the fine-tuning runs of this size and seed
            for fine in (by_name["finetune", k, m, seed] for m in (0.75, 0.9)):
                subset = [o for o in fine.overrides if "labeled_per_class" in o or "subset" in o]
                assert subset == [f"+data.labeled_per_class={k}", f"+data.subset_seed={seed}"]
                assert all(o in scratch.overrides for o in subset)
    for job in jobs:
        assert f"seed={job.seed}" in job.overrides
        assert f"hydra.run.dir={job.run_dir}" in job.overrides
        assert job.overrides[-1] == "data.batch_size=4"  # the user's overrides win


def _write_predictions(path: Path, rows: list[tuple[int, list[int]]]) -> None:
    """A predictions.csv as the test loop writes it: label and the top-5 guesses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        header = ["video", "label", "label_name"] + [f"pred_{i}" for i in range(1, 6)]
        header += [f"pred_name_{i}" for i in range(1, 6)] + [f"score_{i}" for i in range(1, 6)]
        writer.writerow(header)
        for n, (label, guesses) in enumerate(rows):
            names = [f"c{g}" for g in guesses]
            writer.writerow([f"v{n}.mp4", label, f"c{label}", *guesses, *names, *[0.2] * 5])


def test_read_predictions_counts_top1_and_top5(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    _write_predictions(
        path,
        [
            (0, [0, 1, 2, 3, 4]),  # top-1 right
            (1, [0, 1, 2, 3, 4]),  # second guess
            (7, [0, 1, 2, 3, 4]),  # not in the top 5
            (4, [3, 2, 1, 0, 4]),  # fifth guess
        ],
    )
    assert demo.read_predictions(path) == (0.25, 0.75, 4)


def test_read_curve_keeps_rows_with_the_metric(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train/loss,val/acc1\n0,9,2.1,\n0,19,,0.25\n1,29,1.9,\n1,39,,0.5\n")
    assert demo.read_curve(path) == [(19, 0.25), (39, 0.5)]


def test_summary_and_table_numbers() -> None:
    stats = demo.summarize([0.5, 0.6, 0.7])
    assert stats["mean"] == pytest.approx(0.6)
    assert stats["std"] == pytest.approx(0.1)
    assert (stats["min"], stats["max"], stats["n"]) == (0.5, 0.7, 3)
    assert demo.summarize([0.4])["std"] == 0.0

    def row(labeled: int, mask: float | None, top1: list[float]) -> dict:
        runs = {s: demo.RunResult(v, 1.0, 10) for s, v in enumerate(top1)}
        return {
            "labeled": labeled,
            "mask": mask,
            "runs": runs,
            "top1": demo.summarize(top1),
            "top5": demo.summarize([1.0] * len(top1)),
        }

    rows = {
        "labeled_40/scratch": row(40, None, [0.8, 0.9, 0.9]),
        "labeled_5/mask_0.9": row(5, 0.9, [0.5, 0.6, 0.7]),
        "labeled_5/scratch": row(5, None, [0.3, 0.3, 0.2]),
    }
    table = demo.markdown_table(rows, chance=0.125)
    lines = table.splitlines()
    assert lines[2].startswith(
        "| 5 | pretrained | tube masking 0.9 | 3 | 60.0 ± 10.0 | 100.0 ± 0.0 "
    )
    assert "| 50.0, 60.0, 70.0 | +33.3 (+20.0, +30.0, +50.0) |" in lines[2]
    assert lines[3].startswith("| 5 | from scratch | none | 3 | 26.7 ± 5.8 |")
    assert lines[4].startswith("| 40 | from scratch | none | 3 | 86.7 ± 5.8 |")
    assert "Chance: 12.5% top-1." in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--masks", "1.0"], "--masks"),
        (["--seeds", "0", "0"], "--seeds"),
        (["--jobs", "0"], "--jobs"),
        (["--pretrain-epochs", "0"], "--pretrain-epochs"),
        (["--finetune-steps", "0"], "--finetune-steps"),
        (["--labeled", "5", "5"], "--labeled"),
        (["--labeled", "0"], "--labeled"),
        (["--curve", "--labeled", "5"], "--curve"),
        (["--masks", "0.9", "0.90"], "--masks"),
        (["--override", "seed=3"], "seed=3"),
        (["--override", "masking.ratio=0.5"], "masking.ratio"),
        (["--override", "+data.labeled_per_class=3"], "data.labeled_per_class"),
        (["--override", "hydra.run.dir=x"], "hydra.run.dir"),
        (["--override", "data.batch_size"], "KEY=VALUE"),
    ],
)
def test_bad_arguments_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        demo.parse_args(argv)
    assert message in capsys.readouterr().err


def test_bad_override_stops_before_any_work(tmp_path: Path) -> None:
    """A bad value is refused, naming the key, before the set is made or a job starts."""
    with pytest.raises(SystemExit, match=r"data\.batch_size"):
        demo.main(
            [
                "--seeds",
                "0",
                "--out",
                str(tmp_path / "demo"),
                "--override",
                f"paths.data_dir={tmp_path / 'data'}",
                "--override",
                "data.batch_size=-3",
            ]
        )
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "demo").exists()


def test_too_short_run_for_the_warmup_stops_before_any_work(tmp_path: Path) -> None:
    """--pretrain-epochs shorter than the pretraining's warmup is refused before the set is
    made."""
    with pytest.raises(SystemExit, match=r"model\.optim\.warmup_epochs \(3\).*max_epochs 2"):
        demo.main(
            [
                *("--seeds", "0", "--pretrain-epochs", "2", "--out", str(tmp_path / "demo")),
                *("--override", f"paths.data_dir={tmp_path / 'data'}"),
                *("--override", "model.optim.warmup_epochs=3"),
            ]
        )
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_demo_at_reduced_size_writes_a_table_consistent_with_the_predictions(
    tmp_path: Path,
) -> None:
    """Two seeds, two masking ratios, two labeled sizes, a few steps on a small set: every
    file, every number."""
    out = tmp_path / "demo"
    code = demo.main(
        [
            *("--seeds", "0", "1", "--masks", "0.75", "0.9", "--labeled", "1", "2"),
            *("--pretrain-epochs", "3", "--finetune-steps", "4", "--out", str(out)),
            *("--override", f"paths.data_dir={tmp_path / 'data'}"),
            *("--override", "data.synthetic.train_per_class=4"),
            *("--override", "data.synthetic.val_per_class=2"),
            *("--override", "data.batch_size=4"),
        ]
    )
    assert code == 0
    for name in (
        "results.md",
        "results.json",
        "accuracy_curves.png",
        "label_efficiency.png",
        "masking_ratio.png",
    ):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert {j["status"] for j in results["jobs"]} == {"done"}
    table = (out / "results.md").read_text()
    for k in (1, 2):
        for side in ("mask_0.75", "mask_0.9", "scratch"):
            key = f"labeled_{k}/{side}"
            runs = results["rows"][key]["runs"]
            assert sorted(runs) == ["0", "1"]
            top1 = []
            for seed, run in runs.items():
                run_dir = out / key / f"seed_{seed}"
                # the table's numbers are those of the predictions file
                assert demo.read_predictions(run_dir / "predictions.csv") == (
                    run["top1"],
                    run["top5"],
                    16,
                )
                assert run["curve"], "validation accuracy during fine-tuning"
                top1.append(run["top1"])
                log = (run_dir / "train.log").read_text()
                assert f"data.labeled_per_class={k}: training on {8 * k} of" in log
            mean = 100 * sum(top1) / len(top1)
            name = "from scratch" if side == "scratch" else "pretrained"
            line = next(
                ln
                for ln in table.splitlines()
                if ln.startswith(f"| {k} | {name}")
                and (side == "scratch" or f"masking {results['rows'][key]['mask']:g} |" in ln)
            )
            assert re.search(rf"\| {mean:.1f} ± ", line), (line, mean)


def test_report_rewrites_the_table_and_plots_from_the_run_folders(tmp_path: Path) -> None:
    """--report reads each run's predictions.csv and metrics.csv (no training)."""
    out = tmp_path / "demo"
    jobs = demo.plan_jobs(out, [0.9], [0, 1], [5])
    correct = {("finetune", 0): 3, ("finetune", 1): 2, ("scratch", 0): 1, ("scratch", 1): 1}
    for job in jobs:
        if job.name == "pretrain":
            (job.run_dir / "checkpoints").mkdir(parents=True)
            (job.run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
            continue
        hits = correct[job.name, job.seed]  # of 4 videos, label 0, top-1 right for `hits`
        rows = [(0, [0, 1, 2, 3, 4]) if n < hits else (0, [1, 0, 2, 3, 4]) for n in range(4)]
        _write_predictions(job.run_dir / "predictions.csv", rows)
        metrics = job.run_dir / "csv" / "version_0" / "metrics.csv"
        metrics.parent.mkdir(parents=True)
        metrics.write_text(f"epoch,step,val/acc1\n0,9,0.25\n1,19,{hits / 4}\n")
    record = {"masks": [0.9], "seeds": [0, 1], "labeled": [5], "minutes": 1.0, "parallel": 2}
    record["jobs"] = []
    record |= {"num_classes": 8, "val_videos": 4}
    (out / "results.json").write_text(json.dumps(record))

    assert demo.main(["--report", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert (
        "| 5 | pretrained | tube masking 0.9 | 2 | 62.5 ± 17.7 | 100.0 ± 0.0 | 75.0, 50.0 "
        "| +37.5 (+50.0, +25.0) |" in table
    )
    assert "| 5 | from scratch | none | 2 | 25.0 ± 0.0 | 100.0 ± 0.0 | 25.0, 25.0 | 0 |" in table
    rewritten = json.loads((out / "results.json").read_text())
    curve = rewritten["rows"]["labeled_5/mask_0.9"]["runs"]["0"]["curve"]
    assert curve == [[9, 0.25], [19, 0.75]]
    assert (out / "accuracy_curves.png").stat().st_size > 0


def test_checks_then_makes_the_set_where_the_jobs_look_for_it(tmp_path: Path) -> None:
    """Every job's config is checked, then the generated set is made once, under data_dir."""
    overrides = [
        f"paths.data_dir={tmp_path / 'data'}",
        "data.synthetic.train_per_class=1",
        "data.synthetic.val_per_class=1",
    ]
    jobs = demo.plan_jobs(tmp_path / "demo", [0.9], [0], [1], overrides)
    info = demo.check_and_prepare(jobs, ROOT)
    assert {k: info[k] for k in ("num_classes", "train_videos", "val_videos")} == {
        "num_classes": 8,
        "train_videos": 8,
        "val_videos": 8,
    }
    root = tmp_path / "data" / "synthetic_demo"
    assert len((root / "train.csv").read_text().splitlines()) == 8
    assert json.loads((root / "spec.json").read_text())["scene"] == "drift"
