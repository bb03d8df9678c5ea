"""One data-loader worker, today's path against an older checkout: clips/s and bytes per clip.

A worker's whole work is timed: decoding, the transform and the collation of each pass's items
into one batch. Each measurement runs in its own process (one torch thread, one decoder thread)
with the ``src`` folder it is given on ``PYTHONPATH``, so two versions of the project are compared
in one run; the runs alternate (``--repeats``) and the table gives the mean. Pretraining and
fine-tuning items (16 frames every 4, 224 px; ``finetune-device``: RandAugment and the flip left
to the device, ``data.rand_augment_on=device``, where the checkout has it) at ``num_sample`` 1
and 4 from Kinetics-like files
(as ``benchmarks/data_throughput.py`` generates them) and, with ``--fast``, from their
``videomae-transcode`` copy (where the baseline has ``videomae-transcode``, it also reads the
copy its own makes). The bytes per clip are what crosses a worker's queue.

    git worktree add /tmp/old <commit>
    python benchmarks/loader_per_worker.py --baseline-src /tmp/old/src --fast --write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SECTION = "One loader worker: this checkout against a baseline"

MEASURE = r"""
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from videomae.data.datasets import VideoClipDataset
from videomae.data.lists import VideoRecord
from videomae.data.transforms import FinetuneTransform, PretrainTransform
try:  # the checkout's training collate (into shared memory in a real worker)
    from videomae.data.datamodule import _flatten_repeated as collate
except ImportError:
    from torch.utils.data import default_collate as collate
files = sorted(Path(sys.argv[1]).glob("kinetics_like_*.mp4"))
rounds = int(sys.argv[2])
records = [VideoRecord(path=p, label=0, line=i + 1) for i, p in enumerate(files)]
out = {}
transforms = {"pretrain": PretrainTransform(224),
              "finetune": FinetuneTransform(224, rand_augment="rand-m7-n4-mstd0.5-inc1")}
try:  # RandAugment and flip drawn here, applied on the device (not timed: not the worker's)
    transforms["finetune-device"] = FinetuneTransform(
        224, rand_augment="rand-m7-n4-mstd0.5-inc1", rand_augment_on="device")
except TypeError:  # a checkout without data.rand_augment_on
    pass
for name, transform in transforms.items():
    for ns in (1, 4):
        kwargs = dict(num_frames=16, sampling_rate=4, transform=transform, train=True,
                      num_sample=ns, decode_threads=1)
        try:  # the training loader's items: the clips stacked once, by the collation
            ds = VideoClipDataset(records, stack_samples=False, **kwargs)
        except TypeError:  # a checkout that stacks them in the dataset
            ds = VideoClipDataset(records, **kwargs)
        ds[(0, 99)]
        start, clips = time.perf_counter(), 0
        for r in range(rounds):
            batch = collate([ds[(i, r)] for i in range(len(records))])
            clips += ns * len(records)
        out[f"{name} {ns}"] = clips / (time.perf_counter() - start)
        video = batch["video"]
        out[f"{name} {ns} bytes"] = video[0].numel() * video.element_size()
print(json.dumps(out))
"""


def measure(src: Path, folder: Path, rounds: int) -> dict[str, float]:
    """Clips/s and bytes per clip of each pipeline, in a process importing ``src``."""
    from model_throughput import src_env

    env = {**src_env(src), "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), str(rounds)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, optionally write it to BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="the src/ folder of an older checkout")
    parser.add_argument("--fast", action="store_true", help="also read a transcoded copy")
    parser.add_argument("--files", type=int, default=4, help="generated Kinetics-like files")
    parser.add_argument("--rounds", type=int, default=6, help="passes over the files per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per setting")
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    parser.add_argument("--section", default=SECTION, help="its BENCHMARKS.md section")
    args = parser.parse_args(argv)

    from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, generate
    from model_throughput import commit, machine, publish, src_env

    from videomae.cli.transcode import main as transcode

    sources = generate(DEFAULT_CACHE, KINETICS_LIKE, args.files)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "orig"
        folder.mkdir()
        for path in sources:
            (folder / path.name).symlink_to(path)
        settings = []
        if args.baseline_src:
            settings.append(("baseline", args.baseline_src, folder))
        settings.append(("this checkout", ROOT / "src", folder))
        if args.fast:
            (Path(tmp) / "list.csv").write_text("".join(f"{p.name} 0\n" for p in sources))
            fast = Path(tmp) / "fast"
            argv_t = [str(Path(tmp) / "list.csv"), "--root", str(folder), "--out", str(fast)]
            argv_t += ["--jobs", str(os.cpu_count() or 1)]
            if transcode(argv_t) != 0:
                sys.exit("transcoding the benchmark files failed")
            old_transcoder = (
                args.baseline_src
                and (args.baseline_src / "videomae" / "cli" / "transcode.py").exists()
            )
            if old_transcoder:  # the copy the baseline's own videomae-transcode makes
                old_fast = Path(tmp) / "fast_baseline"
                argv_t[argv_t.index(str(fast))] = str(old_fast)
                env = src_env(args.baseline_src)
                command = [sys.executable, "-m", "videomae.cli.transcode", *argv_t]
                subprocess.run(command, env=env, check=True, capture_output=True)
                settings.append(("baseline, its transcoded copy", args.baseline_src, old_fast))
            settings.append(("this checkout, transcoded copy", ROOT / "src", fast))
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in settings}
        for _ in range(args.repeats):
            for name, src, data in settings:
                runs[name].append(measure(src, data, args.rounds))
    keys = list(dict.fromkeys(k for rs in runs.values() for k in rs[0] if not k.endswith("bytes")))
    mean = {
        name: {k: statistics.mean(r[k] for r in rs) for k in keys if k in rs[0]}
        for name, rs in runs.items()
    }
    ref = mean[settings[0][0]]["pretrain 1"]
    lines = [
        f"## {args.section}",
        "",
        f"`python benchmarks/loader_per_worker.py"
        f"{' --baseline-src <old>/src' if args.baseline_src else ''}"
        f"{' --fast' if args.fast else ''}` at {commit()} on "
        f"{machine()}, "
        f"{time.strftime('%Y-%m-%d')}. One process, one torch thread, one decoder thread; "
        f"{len(sources)} Kinetics-like files (340x256 H.264, 300 frames, key frame every 250); "
        "clips of 16 frames every 4 at 224 px; clips/s (mean of "
        f"{args.repeats} alternating runs of {args.rounds} passes); x: against the first row's "
        "pretraining clips/s at num_sample 1.",
        "",
        "| setting | pipeline | num_sample | clips/s | x | bytes per clip |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, _, _ in settings:
        for k in (k for k in keys if k in mean[name]):
            pipe, ns = k.split()
            size = int(runs[name][0][f"{k} bytes"])
            lines.append(
                f"| {name} | {pipe} | {ns} | {mean[name][k]:.1f} | {mean[name][k] / ref:.2f}x "
                f"| {size / 2**20:.1f} MiB |"
            )
    publish(args.section, lines, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
