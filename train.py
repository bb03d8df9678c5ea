"""Train VideoMAE: ``python train.py [experiment=NAME] [group=option] [key=value ...]``.

With no arguments: tiny VideoMAE pretraining on the generated video set, on the CPU.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from videomae.utils.env import load_env
from videomae.utils.preflight import preflight
from videomae.utils.runs import register_resolvers

ROOT = Path(__file__).resolve().parent
load_env(ROOT)
register_resolvers()


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the optimized metric for sweeps."""
    from videomae.train import hydra_main

    return hydra_main(cfg)


if __name__ == "__main__":
    # mistakes in the command line are told before Hydra starts the job (no torch imported yet)
    sys.argv[1:] = preflight(ROOT / "configs", "train.yaml", sys.argv[1:])
    main()
