"""Typed config schemas: a misspelt key in any main group stops the run with the key named and
the closest valid key suggested; values of the wrong type are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_configs import compose_cfg
from videomae.utils.config import ConfigError, validate_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+data.batchsize=4", "data.batchsize: unknown key .*did you mean 'batch_size'"),
        ("+model.compiled=true", "model.compiled: unknown key .*did you mean 'compile'"),
        ("+model.net.embeddim=64", "model.net.embeddim: unknown key .*did you mean 'embed_dim'"),
        ("+model.optim.base_lrr=0.1", "model.optim.base_lrr: unknown key; did you mean 'base_lr'"),
        ("+masking.ration=0.9", "masking.ration: unknown key .*did you mean 'ratio'"),
        ("+backbone.depht=3", "backbone.depht: unknown key; did you mean 'depth'"),
        ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key .*did you mean 'max_epochs'"),
        ("+callbacks.throughput.every=3", "callbacks.throughput.every: unknown key"),
        ("backbone.name=vit_q", "backbone.name: unknown backbone 'vit_q'"),
        ("model.optim.weight_decay=abc", "model.optim.weight_decay must be float"),
        ("backbone.depth=2.5", "backbone.depth must be int"),
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    cfg = compose_cfg(tmp_path, [override])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


def test_nested_targets_are_checked(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path, ["masking=dual_90", "+masking.decoder.ratoi=0.5"])
    with pytest.raises(ConfigError, match=r"masking\.decoder\.ratoi: unknown key .*'ratio'"):
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
