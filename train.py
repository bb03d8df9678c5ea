"""Train VideoMAE: ``python train.py [experiment=NAME] [group=option] [key=value ...]``.

With no arguments: tiny VideoMAE pretraining on the generated video set, on the CPU.
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from videomae.utils.env import load_env
from videomae.utils.runs import register_resolvers

load_env(Path(__file__).resolve().parent)
register_resolvers()


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweeps."""
    from videomae.train import hydra_main

    return hydra_main(cfg)


if __name__ == "__main__":
    main()
