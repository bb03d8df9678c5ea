"""Quiet, readable run logs: each line once, no product tips, no warnings a user cannot act on.

Inside a Hydra job the root logger already prints (and files) every record; Lightning adds its
own console handler to the ``lightning`` logger, so each of its lines would appear twice.
:func:`quiet_logs` removes that handler, drops Lightning's informational lines that say nothing
about the run, and ignores the warnings that come from inside the libraries or from choices this
project makes on purpose (each is listed with its reason).
"""

from __future__ import annotations

import logging
import warnings

DROPPED_LINES = (
    "💡 Tip:",  # Lightning's product tips
    "TPU available:",  # accelerators this project does not use
    "HPU available:",
    "Trainer already configured with model summary callbacks",  # ours is configured
    "Loading `train_dataloader` to estimate number of stepping batches",  # the lr schedule's
)
"""Starts of the Lightning log lines that are not shown."""

IGNORED_WARNINGS = (
    # Lightning 2.6's own use of a torch API that torch 2.10+ deprecates: nothing to do here
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # the test pass after fit uses the first checkpoint callback's best model, as intended
    r"`\.test\(ckpt_path=\"best\"\)` is called with Trainer configured with multiple",
    # eval.py loads a training checkpoint into a run whose checkpoint folder is another one
    r"The dirpath has changed from",
    # runs budgeted in steps over short epochs (the demo): logging by step goes on across epochs
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)
"""Warnings (regular expressions matching their start) that are not shown."""


class _DropLines(logging.Filter):
    """Drops records whose message starts with one of :data:`DROPPED_LINES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(DROPPED_LINES)


def quiet_resume() -> None:
    """Also ignore, for a run that resumes from a checkpoint, Lightning's warning that the
    checkpoints folder is not empty (it is the folder being resumed; a new run pointed at an old
    folder with ``auto_resume=false`` still gets it)."""
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def quiet_logs() -> None:
    """Apply the rules above (idempotent); call after logging is configured (in the job)."""
    root = logging.getLogger()
    if root.handlers:
        lightning = logging.getLogger("lightning")
        for handler in list(lightning.handlers):
            lightning.removeHandler(handler)
    for handler in root.handlers:
        if not any(isinstance(f, _DropLines) for f in handler.filters):
            handler.addFilter(_DropLines())
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
