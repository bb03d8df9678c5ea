"""The typed configs: the model config the networks take, expose and the checkpoints store, the
named sizes, and the optimizer config of both modules."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from videomae.models.classifier import VideoMAEClassifier
from videomae.models.config import (
    ATTENTION_NAMES,
    DECODER_NUM_HEADS,
    NUM_HEADS,
    SIZES,
    ClassifierConfig,
    ModelConfig,
    PretrainConfig,
)
from videomae.models.pretrain import VideoMAEPretrain
from videomae.models.vit import ATTENTION_BACKENDS
from videomae.modules.config import OptimConfig

SMALL = dict(img_size=(32, 48), patch_size=8, num_frames=4, tubelet_size=2, embed_dim=32, depth=1)


def test_derived_counts() -> None:
    config = PretrainConfig(**SMALL, num_heads=2, decoder_embed_dim=16, decoder_num_heads=2)
    assert config.frame_size == (32, 48)
    assert config.grid_size == (2, 4, 6) and config.num_patches == 48
    assert config.patch_dim == 2 * 8 * 8 * 3
    net = VideoMAEPretrain(**config)
    assert net.config == config and net.grid_size == (2, 4, 6) and net.num_patches == 48
    assert net.decoder.head.out_features == config.patch_dim


def test_config_is_frozen_and_reads_as_a_mapping() -> None:
    config = ClassifierConfig(num_classes=5, **SMALL, num_heads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 3  # type: ignore[misc]
    assert config["num_classes"] == 5 and config["head_norm"] is None
    assert dict(config) == config.to_dict() and set(config) == {
        f.name for f in dataclasses.fields(ClassifierConfig)
    }
    with pytest.raises(KeyError):
        config["decoder_depth"]
    # every field is stored, also those at their defaults
    assert config.to_dict()["use_fc_norm"] is True


def test_stored_configs_lacking_keys_take_the_defaults() -> None:
    old = {"num_classes": 3, "embed_dim": 32, "depth": 1, "num_heads": 2}  # an older checkpoint
    config = ClassifierConfig.from_dict(old)
    assert config.use_fc_norm is True and config.head_norm is None and config.img_size == 224
    with pytest.raises(ValueError, match="unknown ClassifierConfig keys: decoder_depth"):
        ClassifierConfig.from_dict({**old, "decoder_depth": 2})


def test_networks_rebuild_from_their_stored_config() -> None:
    net = VideoMAEClassifier(num_classes=4, **SMALL, num_heads=2, use_fc_norm=False)
    again = VideoMAEClassifier(**net.config.to_dict())
    assert again.config == net.config and again.fc_norm is None
    net.set_head_norm("batchnorm")
    assert net.config.head_norm == "batchnorm" and isinstance(net.config, ClassifierConfig)
    pretrain = VideoMAEPretrain(**SMALL, num_heads=2, decoder_embed_dim=16, decoder_num_heads=2)
    pretrain.grad_checkpointing = True
    assert pretrain.config.grad_checkpointing and pretrain.decoder.grad_checkpointing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attention": "fast"}, "attention must be one of auto, math"),
        ({"num_classes": -1}, "num_classes must be >= 0"),
        ({"head_norm": "groupnorm"}, "head_norm must be one of"),
        ({"use_fc_norm": False, "use_mean_pooling": False}, "use_fc_norm=False needs"),
    ],
)
def test_bad_classifier_values_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**{"num_classes": 3, **kwargs})


def test_pretraining_needs_rgb() -> None:
    with pytest.raises(ValueError, match="in_chans must be 3"):
        PretrainConfig(in_chans=1)


def test_one_list_of_attention_backends_and_head_tables_from_the_sizes() -> None:
    assert tuple(ATTENTION_BACKENDS) == ATTENTION_NAMES
    assert NUM_HEADS == {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}
    assert DECODER_NUM_HEADS == {96: 3, 192: 3, 384: 6, 512: 8, 640: 8}
    for size in SIZES.values():
        assert set(size.as_kwargs()) <= {f.name for f in dataclasses.fields(PretrainConfig)}


def test_model_config_imports_without_torch() -> None:
    code = (
        "import sys, videomae.models.config, videomae.modules.config, videomae.utils.schemas; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_optim_config() -> None:
    config = OptimConfig.of({"base_lr": 1e-3, "weight_decay": 0.05, "betas": [0.9, 0.98]})
    assert config.betas == (0.9, 0.98) and config.adam_betas((0.9, 0.95)) == (0.9, 0.98)
    plain = OptimConfig(base_lr=1e-3, weight_decay=0.0)
    assert plain.adam_betas((0.9, 0.95)) == (0.9, 0.95) and plain.layer_decay == 1.0
    assert OptimConfig.of(plain) is plain
    with pytest.raises(ValueError, match=r"unknown key.*base_lrr"):
        OptimConfig.of({"base_lrr": 1e-3, "weight_decay": 0.0, "base_lr": 1.0})
    with pytest.raises(ValueError, match=r"model\.optim\.layer_decay must be in"):
        OptimConfig(base_lr=1e-3, weight_decay=0.0, layer_decay=1.5)
    with pytest.raises(ValueError, match=r"model\.optim\.betas"):
        OptimConfig(base_lr=1e-3, weight_decay=0.0, betas=(0.9,))
    with pytest.raises(ValueError, match=r"model\.optim\.base_lr must be >= 0"):
        OptimConfig(base_lr=-1.0, weight_decay=0.0)


def test_model_config_base_is_shared() -> None:
    assert issubclass(PretrainConfig, ModelConfig) and issubclass(ClassifierConfig, ModelConfig)


def test_network_arguments_are_the_config_fields() -> None:
    """The constructors (what Hydra's model.net and the schema check read) take exactly the
    fields of their config, so the two cannot drift apart."""
    import inspect

    for network, config in (
        (VideoMAEPretrain, PretrainConfig),
        (VideoMAEClassifier, ClassifierConfig),
    ):
        params = set(inspect.signature(network).parameters)
        fields = {f.name for f in dataclasses.fields(config)}
        assert params == fields, (network.__name__, params ^ fields)
        for f in dataclasses.fields(config):
            default = inspect.signature(network).parameters[f.name].default
            if f.default is not dataclasses.MISSING:
                assert default == f.default, (network.__name__, f.name)


def test_modules_keep_the_optimizer_config_typed_and_hparams_plain() -> None:
    from videomae.models.masking import TubeMasking
    from videomae.modules.pretrain import PretrainModule

    net = VideoMAEPretrain(**SMALL, num_heads=2, decoder_embed_dim=16, decoder_num_heads=2)
    optim = OptimConfig(base_lr=1e-3, weight_decay=0.05, warmup_steps=0)
    module = PretrainModule(net, TubeMasking(0.75), batch_size=2, optim=optim)
    assert module.optim_cfg is optim
    assert module.hparams["optim"] == dataclasses.asdict(optim)  # plain data in checkpoints
    with pytest.raises(ValueError, match=r"model\.optim\.layer_decay=0\.75: pretraining has no"):
        PretrainModule(
            net, TubeMasking(0.75), 2, {"base_lr": 1e-3, "weight_decay": 0.0, "layer_decay": 0.75}
        )


def test_compile_auto_compiles_on_cuda_unless_the_model_is_sharded(caplog) -> None:
    """``model.compile=auto`` (the pretraining default): compiled on CUDA, single device or
    DDP; eager on the CPU and under FSDP; any other value is refused by name."""
    import lightning as L
    import torch
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy, SingleDeviceStrategy

    from videomae.models.masking import TubeMasking
    from videomae.modules.base import auto_compile
    from videomae.modules.pretrain import PretrainModule

    assert auto_compile("cuda", SingleDeviceStrategy("cuda:0"))[0]
    assert auto_compile("cuda", DDPStrategy())[0]
    assert not auto_compile("cuda", FSDPStrategy())[0]
    assert not auto_compile("cuda", type("MyFSDP", (FSDPStrategy,), {})())[0]
    assert not auto_compile("cpu", DDPStrategy())[0]

    net = VideoMAEPretrain(**SMALL, num_heads=2, decoder_embed_dim=16, decoder_num_heads=2)
    optim = {"base_lr": 1e-3, "weight_decay": 0.05, "warmup_steps": 0}
    with pytest.raises(ValueError, match=r"model\.compile='yes': expected true, false or auto"):
        PretrainModule(net, TubeMasking(0.75), batch_size=2, optim=optim, compile="yes")
    module = PretrainModule(net, TubeMasking(0.75), batch_size=2, optim=optim, compile="auto")
    clips = torch.randn(2, 3, SMALL["num_frames"], *SMALL["img_size"])
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with caplog.at_level("INFO"):
        trainer.fit(module, torch.utils.data.DataLoader([{"video": c} for c in clips], 2))
    assert not module._compiled and "model.compile=auto: not compiled on cpu" in caplog.text


def test_img_size_of_any_sequence_becomes_a_tuple_of_ints() -> None:
    import numpy as np

    assert PretrainConfig(img_size=np.array([32, 48])).img_size == (32, 48)
    assert isinstance(hash(PretrainConfig(img_size=[32, 48])), int)
