"""A process pool with a progress bar, for the console scripts that work file by file."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["map_with_progress", "pool_context"]

T = TypeVar("T")
R = TypeVar("R")


def pool_context() -> Any:
    """A multiprocessing context whose workers start clean: a process that has run decoders or
    torch holds threads, and a plain ``fork`` of it can deadlock. ``forkserver`` forks the
    workers from a fresh server process that has imported the decoders once."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["videomae.data.decoding"])
        return context
    return multiprocessing.get_context("spawn")


def map_with_progress(
    function: Callable[[T], R], tasks: Sequence[T], workers: int, desc: str, unit: str = "video"
) -> Iterator[R]:
    """``function`` over ``tasks`` (in a process pool when ``workers > 1``), results in task
    order as they come, with a progress bar on stderr. ``function`` must be importable."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit=unit, file=sys.stderr, leave=False)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                yield function(task)
                bar.update()
        else:
            chunk = max(1, min(64, len(tasks) // (workers * 8)))
            with pool_context().Pool(workers) as pool:
                for result in pool.imap(function, tasks, chunksize=chunk):
                    yield result
                    bar.update()
    finally:
        bar.close()
