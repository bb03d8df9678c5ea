"""Where the training loop makes the host wait for the GPU: ``train.py`` under CUDA's sync debug
mode, every synchronizing operation counted by the line that made it.

    python benchmarks/count_syncs.py [train.py overrides ...]

Runs ``train.py`` in this process with ``torch.cuda.set_sync_debug_mode("warn")`` (a warning
for each operation that blocks the host on the device: ``.item()``, ``.tolist()``, ``.cpu()``
of a CUDA tensor, a boolean index, ...), then prints one line per source line with its count
and the number of optimizer steps, so that per-step syncs stand out (a count near the step
count). Without CUDA it runs the job and reports that nothing was counted. Waits on CUDA
events are not counted (the NaN/inf guard's and the preemption agreement's reads of the previous
step's flag: done by then unless the device lags a step behind).
"""

from __future__ import annotations

import collections
import runpy
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    """Run train.py with ``argv``; print the synchronizing lines by count."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_sync_debug_mode("warn")
    sys.argv = [str(ROOT / "train.py"), *argv, "extras.ignore_warnings=false"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if cuda:  # a known sync first: shows that the warnings are caught at all
            torch.zeros(1, device="cuda").item()
        try:
            runpy.run_path(str(ROOT / "train.py"), run_name="__main__")
        except SystemExit as stop:
            if stop.code not in (0, None):
                print(f"train.py exited with {stop.code}")
                return 1
    syncs = collections.Counter(
        f"{Path(w.filename).name}:{w.lineno}"
        for w in caught
        if "synchronizing CUDA operation" in str(w.message)
    )
    if cuda:
        print(
            f"synchronizing operations: {sum(syncs.values())} in all, one of them the check's "
            "own .item() (count_syncs.py)"
        )
    else:
        print("synchronizing operations: none counted (no CUDA)")
    for where, count in syncs.most_common(12):
        print(f"  {count:6d}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
