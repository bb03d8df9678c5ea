"""Typed config schemas: a misspelt key in any main group stops the run with the key named and
the closest valid key suggested; values of the wrong type are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from test_configs import compose_cfg
from videomae.utils.config import ConfigError, validate_config
from videomae.utils.schemas import imported_keys, static_keys


@pytest.mark.parametrize("light", [False, True])
@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("+data.batchsize=4", "data.batch_size"),
        ("+model.compiled=true", "model.compile"),
        ("+model.net.embeddim=64", "model.net.embed_dim"),
        ("+model.optim.base_lrr=0.1", "model.optim.base_lr"),
        ("+masking.ration=0.9", "masking.ratio"),
        ("+backbone.depht=3", "backbone.depth"),
        ("+trainer.max_epoch=3", "trainer.max_epochs"),
    ],
)
def test_misspelt_keys_get_the_closest_key(
    tmp_path: Path, override: str, suggestion: str, light: bool
) -> None:
    """Both the full check and the light one (keys read from the sources, nothing imported)."""
    cfg = compose_cfg(tmp_path, [override])
    key = override[1:].split("=")[0]
    message = f"{key}: unknown key; did you mean {suggestion}?"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(cfg, light=light)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+callbacks.throughput.every=3",
            r"callbacks.throughput.every: unknown key for .*ThroughputMonitor \(valid: ",
        ),
        ("backbone.name=vit_q", "backbone.name: unknown backbone 'vit_q'"),
        ("model.optim.weight_decay=abc", "model.optim.weight_decay must be float"),
        ("backbone.depth=2.5", "backbone.depth must be int"),
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    cfg = compose_cfg(tmp_path, [override])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_static_keys_match_the_imported_signatures(tmp_path: Path) -> None:
    """Every target the configs name: the keys read from its source without importing it are
    those of its imported signature (or unknown, and then left to the full check)."""
    targets: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, DictConfig):
            if isinstance(node.get("_target_"), str):
                targets.add(node._target_)
            for key in node:
                if not OmegaConf.is_interpolation(node, key):
                    walk(node._get_node(key))
        elif isinstance(node, ListConfig):
            for item in node:
                walk(item)

    for overrides in (
        ["experiment=synthetic_finetune", "logger=many_loggers"],
        ["trainer=fsdp", "masking=dual_90"],
        ["experiment=ssv2_pretrain", "trainer=ddp"],
    ):
        walk(compose_cfg(tmp_path, overrides))
    read = {target: static_keys(target) for target in sorted(targets)}
    assert {t for t, keys in read.items() if keys is not None} >= {
        "lightning.pytorch.Trainer",
        "videomae.data.datamodule.VideoDataModule",
        "videomae.models.masking.DualMasking",
        "videomae.models.masking.TubeMasking",
        "videomae.models.pretrain.VideoMAEPretrain",
        "videomae.modules.finetune.FinetuneModule",
        "videomae.modules.pretrain.PretrainModule",
    }
    for target, keys in read.items():
        if keys is not None:
            assert keys == imported_keys(target), target


def test_nested_targets_are_checked(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, ["masking=dual_90", "+masking.decoder.ratoi=0.5"])
    with pytest.raises(
        ConfigError,
        match=r"masking\.decoder\.ratoi: unknown key; did you mean masking\.decoder\.ratio\?",
    ):
        validate_config(cfg)
    # FSDPStrategy takes **kwargs (anything goes), its wrap policy does not
    cfg = compose_cfg(tmp_path, ["trainer=fsdp", "+trainer.strategy.auto_wrap_policy.modules=1"])
    with pytest.raises(ConfigError, match=r"trainer\.strategy\.auto_wrap_policy\.modules"):
        validate_config(cfg)


def test_every_error_is_listed_at_once(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, ["+backbone.depht=3", "masking.ratio=1.5"])
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert "backbone.depht" in str(info.value) and "masking.ratio" in str(info.value)


def test_valid_configs_pass(tmp_path: Path) -> None:
    for overrides in ([], ["trainer=fsdp"], ["masking=dual_90"], ["logger=many_loggers"]):
        validate_config(compose_cfg(tmp_path, overrides))
