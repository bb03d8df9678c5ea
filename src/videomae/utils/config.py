"""Checks of a composed run config that must pass before any work starts.

Each failure names the config key and the bad value. Two layers: the typed schemas of
:mod:`videomae.utils.schemas` (misspelt keys, with the closest valid key suggested, and value
types), then the quantities that must agree across groups (clip shape vs. patch/tubelet size,
masking ratio, batch size); everything else is checked by the constructors that receive it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from videomae.errors import ConfigError
from videomae.utils.schemas import check_schemas


def _get(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if node is None or part not in node:
            return None
        node = node[part]
    return node


def _positive_int(cfg: DictConfig, key: str, errors: list[str]) -> int | None:
    value = _get(cfg, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append(f"{key} must be a positive integer, got {value!r}")
        return None
    return value


def _check_masking(cfg: DictConfig, grid: tuple[int, int, int]) -> list[str]:
    """Build the mask generator and ask it for its masked count on the model's token ``grid``:
    a ratio that masks nothing (or everything) on that grid is refused here, naming the key."""
    try:
        masking = hydra.utils.instantiate(cfg.masking)
        if hasattr(masking, "num_masked"):
            masking.num_masked(grid)
    except Exception as error:  # the generators raise ValueError naming `ratio`
        cause = error.__cause__ or error
        return [f"masking.ratio does not fit the token grid {grid}: {cause}"]
    return []


def validate_config(cfg: DictConfig, light: bool = False) -> None:
    """Raise :class:`ConfigError` listing every bad key and value of ``cfg`` (keys named).

    ``light``: only the checks that import nothing heavy (no torch, no Lightning), run by
    :mod:`videomae.utils.preflight` before Hydra starts the job; the job runs them all.
    """
    errors: list[str] = check_schemas(cfg, light=light)
    img_size = _positive_int(cfg, "data.img_size", errors)
    num_frames = _positive_int(cfg, "data.num_frames", errors)
    _positive_int(cfg, "data.sampling_rate", errors)
    _positive_int(cfg, "data.batch_size", errors)
    patch = _positive_int(cfg, "backbone.patch_size", errors)
    tubelet = _positive_int(cfg, "backbone.tubelet_size", errors)
    for prefix in ("backbone.", "backbone.decoder_"):
        dim = _positive_int(cfg, f"{prefix}embed_dim", errors)
        heads = _positive_int(cfg, f"{prefix}num_heads", errors)
        _positive_int(cfg, f"{prefix}depth", errors)
        if dim and heads and dim % heads:
            errors.append(
                f"{prefix}embed_dim ({dim}) must be divisible by {prefix}num_heads ({heads})"
            )
    if img_size and patch and img_size % patch:
        errors.append(
            f"data.img_size ({img_size}) must be divisible by backbone.patch_size ({patch})"
        )
    if num_frames and tubelet and num_frames % tubelet:
        errors.append(
            f"data.num_frames ({num_frames}) must be divisible by backbone.tubelet_size ({tubelet})"
        )
    for key in ("masking.ratio", "masking.encoder.ratio", "masking.decoder.ratio"):
        ratio = _get(cfg, key)
        if ratio is not None and not (
            isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and 0 < ratio < 1
        ):
            errors.append(f"{key} must be in (0, 1), got {ratio!r}")
    if (
        not light
        and not errors
        and img_size
        and patch
        and num_frames
        and tubelet
        and "masking" in cfg
    ):
        errors.extend(
            _check_masking(cfg, (num_frames // tubelet, img_size // patch, img_size // patch))
        )
    base_lr = _get(cfg, "model.optim.base_lr")
    if base_lr is not None and not (isinstance(base_lr, (int, float)) and base_lr > 0):
        errors.append(f"model.optim.base_lr must be > 0, got {base_lr!r}")
    errors.extend(_check_warmup(cfg))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def _check_warmup(cfg: DictConfig) -> list[str]:
    """A warmup longer than a run bounded by epochs (``model.optim.warmup_epochs`` against
    ``trainer.max_epochs``), known from the config alone. A run bounded by ``trainer.max_steps``
    is not refused: its schedule shortens the warmup to the run, with a warning."""
    warmup_epochs = _get(cfg, "model.optim.warmup_epochs")
    max_steps = _get(cfg, "trainer.max_steps")
    max_epochs = _get(cfg, "trainer.max_epochs")
    by_steps = isinstance(max_steps, int) and max_steps > 0
    if (
        not by_steps
        and _get(cfg, "model.optim.warmup_steps") is None
        and isinstance(warmup_epochs, (int, float))
        and isinstance(max_epochs, int)
        and max_epochs > 0
        and warmup_epochs > max_epochs
    ):
        return [
            f"model.optim.warmup_epochs ({warmup_epochs}) is longer than the run "
            f"(trainer.max_epochs {max_epochs})"
        ]
    return []


def compose_run_config(
    config_dir: str | Path,
    overrides: Sequence[str],
    output_dir: str | Path | None,
    config_name: str = "train.yaml",
) -> DictConfig:
    """Compose a run config as ``python train.py OVERRIDES`` (or ``eval.py``) would, outside Hydra.

    The ``hydra`` node is resolved into :class:`HydraConfig` and then dropped, and
    ``paths.output_dir`` (``${hydra:runtime.output_dir}`` in a real run) is set to
    ``output_dir`` (None: ``hydra.run.dir``, as in the run), so the result resolves and
    instantiates like the job's config. Used to check
    configs before any work (``videomae.demo``) and by the tests. ``PROJECT_ROOT`` must be set
    (:func:`videomae.utils.env.load_env`).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from videomae.utils.runs import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(config_dir)):
            cfg = compose(
                config_name=config_name, overrides=list(overrides), return_hydra_config=True
            )
            HydraConfig().set_config(cfg)
            with open_dict(cfg):
                run_dir = cfg.hydra.run.dir if output_dir is None else output_dir
                cfg.paths.output_dir = str(Path(str(run_dir)).absolute())
                del cfg["hydra"]
    finally:
        GlobalHydra.instance().clear()
    return cfg
