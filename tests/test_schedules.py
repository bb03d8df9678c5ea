"""The learning-rate schedule, the lr scaling rule and the weight-decay parameter groups."""

from __future__ import annotations

import itertools
import logging
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from videomae.models.vit import no_weight_decay_names
from videomae.modules.schedules import (
    clean_param_name,
    param_groups_weight_decay,
    scaled_lr,
    warmup_cosine,
    warmup_cosine_scheduler,
)


def test_scaled_lr_is_linear_in_global_batch() -> None:
    assert scaled_lr(1.5e-4, 256) == pytest.approx(1.5e-4)
    assert scaled_lr(1.5e-4, 32 * 64) == pytest.approx(1.2e-3)


def test_warmup_cosine_hand_values() -> None:
    kw = dict(peak_lr=1.0, warmup_steps=10, total_steps=110, warmup_lr=0.0, min_lr=0.1)
    assert warmup_cosine(0, **kw) == pytest.approx(0.0)
    assert warmup_cosine(5, **kw) == pytest.approx(0.5)
    assert warmup_cosine(10, **kw) == pytest.approx(1.0)
    # halfway through the cosine: the mean of peak and min
    assert warmup_cosine(60, **kw) == pytest.approx(0.55)
    assert warmup_cosine(35, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(110, **kw) == pytest.approx(0.1)
    assert warmup_cosine(500, **kw) == pytest.approx(0.1)


def test_warmup_starts_at_warmup_lr_and_rises_monotonically() -> None:
    kw = dict(peak_lr=2e-3, warmup_steps=40, total_steps=400, warmup_lr=1e-6, min_lr=1e-5)
    values = [warmup_cosine(s, **kw) for s in range(401)]
    assert values[0] == pytest.approx(1e-6)
    assert all(a < b for a, b in itertools.pairwise(values[:41]))
    assert all(a >= b for a, b in itertools.pairwise(values[40:]))


def test_no_weight_decay_on_norms_biases_and_skipped_names() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.q_bias = nn.Parameter(torch.zeros(4))
            self.mask_token = nn.Parameter(torch.zeros(1, 1, 4))
            self.frozen = nn.Parameter(torch.zeros(4, 4), requires_grad=False)

    net = Net()
    names = no_weight_decay_names(net, always=("mask_token",))
    assert names == {"fc.bias", "norm.weight", "norm.bias", "q_bias", "mask_token"}
    decay, no_decay = param_groups_weight_decay(net, 0.05, names)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert [id(p) for p in decay["params"]] == [id(net.fc.weight)]
    expected = {
        id(net.fc.bias),
        id(net.norm.weight),
        id(net.norm.bias),
        id(net.q_bias),
        id(net.mask_token),
    }
    assert {id(p) for p in no_decay["params"]} == expected


def test_groups_survive_fsdp_style_flattening_and_wrapper_prefixes() -> None:
    """FSDP (use_orig_params) flattens every parameter to 1-D and prefixes the names: the groups
    must still follow the unwrapped model."""
    assert clean_param_name("_fsdp_wrapped_module.blocks.0._checkpoint_wrapped_module.x") == (
        "blocks.0.x"
    )
    inner = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    names = no_weight_decay_names(inner)

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._fsdp_wrapped_module = nn.Module()
            for name, p in inner.named_parameters():
                flat = nn.Parameter(p.detach().flatten().clone())
                self._fsdp_wrapped_module.register_parameter(name.replace(".", "_"), flat)

    # the flattened copies are registered under the same names (dots replaced for registration)
    wrapped = Wrapped()
    names_flat = {n.replace(".", "_") for n in names}
    decay, no_decay = param_groups_weight_decay(wrapped, 0.05, names_flat)
    assert len(decay["params"]) == 1 and decay["params"][0].numel() == 16  # the linear weight
    assert len(no_decay["params"]) == 3


def _schedule(trainer: SimpleNamespace, **optim: float) -> torch.optim.lr_scheduler.LambdaLR:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    config = {"base_lr": 1.0, "weight_decay": 0.0, **optim}
    return warmup_cosine_scheduler(
        optimizer, config, peak_lr=1.0, global_batch_size=256, trainer=trainer
    )


def test_warmup_longer_than_a_max_steps_run_is_shortened_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # python train.py ++trainer.max_steps=6: one warmup epoch of 40 steps, a run of 6 steps
    trainer = SimpleNamespace(
        estimated_stepping_batches=6,
        max_steps=6,
        max_epochs=10,
        num_training_batches=40,
        accumulate_grad_batches=1,
    )
    with caplog.at_level(logging.WARNING):
        scheduler = _schedule(trainer, warmup_epochs=1, min_lr=0.0)
    assert "warmup (40 steps" in caplog.text and "trainer.max_steps 6" in caplog.text
    assert "shortened to 6 steps" in caplog.text
    factors = [scheduler.lr_lambdas[0](step) for step in range(7)]
    assert factors == pytest.approx([step / 6 for step in range(7)])  # the run is the warmup


def test_warmup_longer_than_an_epoch_bounded_run_is_an_error() -> None:
    trainer = SimpleNamespace(
        estimated_stepping_batches=80,
        max_steps=-1,
        max_epochs=2,
        num_training_batches=40,
        accumulate_grad_batches=1,
    )
    with pytest.raises(ValueError, match=r"warmup_epochs \(3\).*80 steps"):
        _schedule(trainer, warmup_epochs=3)
    # max_steps set but the epochs end the run first: still bounded by epochs
    trainer.max_steps = 500
    with pytest.raises(ValueError, match="must not be longer"):
        _schedule(trainer, warmup_epochs=3)


def test_adamw_is_fused_on_cuda_only() -> None:
    from videomae.modules.schedules import adamw_with_schedule

    trainer = SimpleNamespace(
        estimated_stepping_batches=10, max_steps=-1, max_epochs=1, num_training_batches=10,
        accumulate_grad_batches=1,
    )  # fmt: skip
    optim = dict(base_lr=1.0, weight_decay=0.0, warmup_steps=1)
    groups = [{"params": [nn.Parameter(torch.zeros(3))]}]
    kwargs = dict(peak_lr=1.0, global_batch_size=256, trainer=trainer, default_betas=(0.9, 0.95))
    cpu = adamw_with_schedule(groups, optim, **kwargs)["optimizer"]
    assert not cpu.defaults["fused"]
    if torch.cuda.is_available():
        groups = [{"params": [nn.Parameter(torch.zeros(3, device="cuda"))]}]
        gpu = adamw_with_schedule(groups, optim, **kwargs)["optimizer"]
        assert gpu.defaults["fused"]
