"""Print the resolved run config as a tree and save it in the run folder."""

from __future__ import annotations

from pathlib import Path

import rich
import rich.syntax
import rich.tree
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

GROUP_ORDER = ("data", "backbone", "masking", "model", "callbacks", "logger", "trainer", "paths")


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_to: str | Path | None = None) -> None:
    """Print each top-level group of ``cfg`` (resolved) as a branch; write it to ``save_to``."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in GROUP_ORDER if k in cfg] + [k for k in cfg if k not in GROUP_ORDER]
    for key in keys:
        branch = tree.add(str(key), style="bold")
        value = cfg[key]
        text = (
            OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        )
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)
    if save_to is not None:
        with open(save_to, "w") as file:
            rich.print(tree, file=file)
