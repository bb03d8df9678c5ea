"""Collating a repeated-augmentation training batch inside a loader worker: two forms side by side.

A training batch of ``--videos`` videos x ``--num-sample`` clips (uint8, channels last, as the
transforms return them) collated by the data module's training collation inside a real
DataLoader worker, where the batch is made in shared memory:

- ``stacked items``: each video's clips stacked first (``VideoClipDataset(stack_samples=True)``,
  the form before), then the items collated into the batch: every clip copied twice;
- ``one stack``: the items carry lists of clips (``stack_samples=False``, the training loader's
  form) and the collation copies each clip once, straight into the batch.

The two take turns, ``--repeats`` times each; medians and minima of ms per batch.

    python benchmarks/collate.py --write
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

SECTION = "Collating repeated-augmentation clips in a loader worker (benchmarks/collate.py)"


class _Timed(Dataset):
    """One item: the timings, taken in the worker process (``get_worker_info`` is set there, so
    the collation allocates shared memory as in training)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def __len__(self) -> int:
        return 1

    def __getitem__(self, _: int) -> dict[str, list[float]]:
        from videomae.data.datamodule import _flatten_repeated as collate
        from videomae.data.layout import channels_last_clip, stack

        a = self.args
        generator = torch.Generator().manual_seed(0)

        def clip() -> torch.Tensor:
            frames = torch.randint(0, 256, (a.frames, 3, a.size, a.size), generator=generator)
            return channels_last_clip(frames.to(torch.uint8))

        items = [
            {
                "video": [clip() for _ in range(a.num_sample)],
                "label": torch.tensor(0),
                "index": torch.tensor(i),
            }
            for i in range(a.videos)
        ]
        forms = {
            "stacked items": lambda: collate([{**it, "video": stack(it["video"])} for it in items]),
            "one stack": lambda: collate(items),
        }
        times: dict[str, list[float]] = {name: [] for name in forms}
        for rep in range(a.repeats + 1):
            for name in forms if rep % 2 == 0 else reversed(forms):
                start = time.perf_counter()
                batch = forms[name]()
                if rep:  # the first round warms up
                    times[name].append(1e3 * (time.perf_counter() - start))
                del batch
        return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=8, help="videos per batch")
    parser.add_argument("--num-sample", type=int, default=4, help="clips per video")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    from model_throughput import commit, machine, publish

    torch.set_num_threads(1)
    loader = DataLoader(_Timed(args), batch_size=None, num_workers=1)
    times = next(iter(loader))
    clips = args.videos * args.num_sample
    base = statistics.median(times["stacked items"])
    lines = [
        f"## {SECTION}",
        "",
        f"`python benchmarks/collate.py --repeats {args.repeats}` at {commit()} on {machine()}, "
        f"{time.strftime('%Y-%m-%d')}. One DataLoader worker (shared memory) collates a batch "
        f"of {args.videos} videos x {args.num_sample} clips of {args.frames} x {args.size} x "
        f"{args.size} uint8, channels last; the two forms take turns, {args.repeats} times each.",
        "",
        "| form | median ms a batch | min ms | ms a clip | vs stacked items |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(
            f"| {name} | {median:.1f} | {min(values):.1f} | {median / clips:.2f} | "
            f"{base / median:.2f}x |"
        )
    publish(SECTION, lines, args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
