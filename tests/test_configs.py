"""Every config composes, resolves and instantiates; bad values stop the run with the key named."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from videomae.utils.config import ConfigError, compose_run_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def compose_cfg(tmp_path: Path, overrides: list[str], name: str = "train.yaml") -> DictConfig:
    """Compose a run config like `python train.py OVERRIDES` would, rooted at tmp_path."""
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    cfg = compose_run_config(CONFIGS, overrides, tmp_path / "run", name)
    with open_dict(cfg):
        cfg.paths.data_dir = str(tmp_path / "data")
    return cfg


def test_default_is_synthetic_pretrain(tmp_path: Path) -> None:
    default = compose_cfg(tmp_path, [])
    explicit = compose_cfg(tmp_path, ["experiment=synthetic_pretrain"])
    assert OmegaConf.to_container(default.model) == OmegaConf.to_container(explicit.model)
    assert default.backbone.name == "tiny"
    assert default.data.synthetic is not None
    assert default.masking.ratio == 0.9
    # the embedded set and clip: the drift scene, 8 frames every 2 at 64 px; the demo's set is
    # the same scene with twice the validation (test) videos, in its own folder
    assert default.data.synthetic.scene == "drift"
    assert (default.data.num_frames, default.data.sampling_rate, default.data.img_size) == (
        8,
        2,
        64,
    )
    demo = compose_cfg(tmp_path, ["data=synthetic_demo"]).data
    assert (demo.synthetic.scene, demo.synthetic.val_per_class) == ("drift", 20)
    assert demo.root != default.data.root


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_resolves(tmp_path: Path, experiment: str) -> None:
    cfg = compose_cfg(tmp_path, [f"experiment={experiment}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["net"]["img_size"] == cfg.data.img_size
    validate_config(cfg)
    # the network is built from the composed values (tiny sizes keep this fast for big backbones)
    net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
    small = dict(
        embed_dim=64,
        depth=1,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    net_cfg.update({k: v for k, v in small.items() if k in net_cfg})  # classifiers: no decoder
    net = hydra.utils.instantiate(net_cfg)
    assert net.num_frames == cfg.data.num_frames
    assert net.img_size == cfg.data.img_size


@pytest.mark.parametrize(
    ("experiment", "sampling_rate"), [("ssv2_pretrain", 2), ("k400_pretrain", 4)]
)
def test_official_recipes(tmp_path: Path, experiment: str, sampling_rate: int) -> None:
    cfg = compose_cfg(tmp_path, [f"experiment={experiment}"])
    assert cfg.data.num_frames == 16
    assert cfg.data.sampling_rate == sampling_rate
    assert cfg.data.img_size == 224
    assert cfg.masking.ratio == 0.9
    assert cfg.model.optim.base_lr == 1.5e-4
    assert cfg.model.optim.warmup_epochs == 40
    assert cfg.trainer.max_epochs == 800
    assert cfg.data.batch_size == 32
    assert cfg.backbone.name == "vit_b"


@pytest.mark.parametrize(
    "group", ["trainer", "logger", "callbacks", "masking", "backbone", "data", "debug"]
)
def test_every_option_of_group_composes(tmp_path: Path, group: str) -> None:
    for option in sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")):
        if group == "debug" and option == "default":
            continue
        cfg = compose_cfg(tmp_path, [f"{group}={option}"])
        OmegaConf.to_container(cfg, resolve=True)


def test_fsdp_strategy_instantiates(tmp_path: Path) -> None:
    from lightning.pytorch.strategies import FSDPStrategy

    from videomae.models.vit import Block

    cfg = compose_cfg(tmp_path, ["trainer=fsdp"])
    strategy = hydra.utils.instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    assert Block in strategy.kwargs["auto_wrap_policy"]._module_classes


def test_slurm_launcher_and_optuna_search_compose(tmp_path: Path) -> None:
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        cfg = compose(
            config_name="train.yaml",
            overrides=["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"],
            return_hydra_config=True,
        )
        launcher = cfg.hydra.launcher
        assert launcher._target_.endswith("SlurmLauncher")
        assert launcher.tasks_per_node == 4  # one task per GPU
        assert launcher.signal_delay_s > 0 and launcher.max_num_timeout > 0
        search = compose(
            config_name="train.yaml",
            overrides=["hparams_search=optuna", "optimized_metric=val/acc1"],
            return_hydra_config=True,
        )
        from videomae.utils.runs import register_resolvers

        register_resolvers()
        assert search.hydra.sweeper.direction == "maximize"
        assert search.hydra.sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    GlobalHydra.instance().clear()


def test_backbone_configs_match_registry(tmp_path: Path) -> None:
    from videomae.models.registry import get_size

    for path in sorted((CONFIGS / "backbone").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        size = get_size(cfg.name)
        for key in (
            "embed_dim",
            "depth",
            "num_heads",
            "mlp_ratio",
            "patch_size",
            "decoder_embed_dim",
            "decoder_depth",
            "decoder_num_heads",
        ):
            assert cfg[key] == pytest.approx(getattr(size, key)), f"{path.name}: {key}"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("masking.ratio=1.0", "masking.ratio"),
        ("masking.ratio=0", "masking.ratio"),
        ("masking.ratio=0.02", "masking.ratio"),  # masks no position of the 4x4 grid
        ("masking=dual_90 masking.encoder.ratio=1.2", "masking.encoder.ratio"),
        ("data.num_frames=15", "data.num_frames"),
        ("data.img_size=100", "data.img_size"),
        ("data.batch_size=0", "data.batch_size"),
        ("backbone.num_heads=5", "backbone.embed_dim"),
        ("trainer.max_epochs=3 model.optim.warmup_epochs=4", "model.optim.warmup_epochs"),
    ],
)
def test_bad_values_are_refused_with_key(tmp_path: Path, override: str, key: str) -> None:
    cfg = compose_cfg(tmp_path, override.split())
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(cfg)


@pytest.mark.parametrize(
    "override",
    [
        "trainer.max_epochs=4 model.optim.warmup_epochs=4",
        # a run bounded by steps: the epochs' warmup is checked by the schedule, not here
        "trainer.max_epochs=3 +trainer.max_steps=500 model.optim.warmup_epochs=4",
        "+trainer.max_steps=50 +model.optim.warmup_steps=50",
        # longer than a run bounded by steps: the schedule shortens it (tests/test_schedules.py)
        "+trainer.max_steps=50 +model.optim.warmup_steps=51",
        "++trainer.max_steps=6",
    ],
)
def test_warmup_that_fits_the_run_is_accepted(tmp_path: Path, override: str) -> None:
    validate_config(compose_cfg(tmp_path, override.split()))
