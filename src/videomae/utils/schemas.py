"""Typed schemas of the main config groups: misspelt keys and wrongly typed values, named.

Two kinds of check, so that no constructor signature is typed twice:

- a group (or nested node) with a ``_target_`` is checked against the signature of that target
  (:func:`inspect.signature`): every key must be a parameter of the class or function, unless it
  takes ``**kwargs``. This covers ``data``, ``model``, ``model.net``, ``masking`` (and its
  ``encoder`` / ``decoder``), ``trainer`` (``lightning.pytorch.Trainer``), ``trainer.strategy``
  and every ``callbacks.*`` / ``logger.*`` entry.
- the plain groups without a target, ``backbone`` and ``model.optim``, have dataclass schemas
  (:class:`BackboneSchema`, :class:`OptimSchema`) giving the allowed keys and their types.

A misspelt key is reported with the closest valid one (``data.batchsize: unknown key; did you
mean data.batch_size?``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

HYDRA_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})
"""Keys that Hydra's ``instantiate`` reads itself; never constructor parameters."""


@dataclasses.dataclass
class BackboneSchema:
    """The ``backbone`` group: encoder/decoder sizes and the token geometry."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    patch_size: int
    tubelet_size: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int


@dataclasses.dataclass
class OptimSchema:
    """``model.optim``: AdamW and the warmup + cosine schedule (see ``PretrainModule``)."""

    base_lr: float
    weight_decay: float
    warmup_lr: float = 0.0
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


OPTIM_SCHEMAS: dict[str, type] = {"videomae.modules.pretrain.PretrainModule": OptimSchema}
"""``model._target_`` -> the schema of its ``model.optim`` (other modules' optim keys are
checked by their own constructors)."""

TARGET_GROUPS = ("data", "model", "masking", "trainer")
"""Top-level groups whose ``_target_`` signatures are checked (recursively into nested targets)."""

ENTRY_GROUPS = ("callbacks", "logger")
"""Groups made of named entries, each with its own ``_target_``."""


def suggest(key: str, valid: list[str] | set[str]) -> str:
    """``"; did you mean X?"`` for the valid key closest to ``key``, or ``""``."""
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def accepted_keys(target: Callable[..., Any]) -> set[str] | None:
    """The keyword parameters of ``target`` (a class: of its ``__init__``); ``None`` when it
    takes ``**kwargs`` (anything goes) or has no readable signature."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    names: set[str] = set()
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            names.add(param.name)
    return names


def check_target_node(node: DictConfig, path: str, errors: list[str]) -> None:
    """Check the keys of ``node`` against its ``_target_`` signature, then its nested targets."""
    target_path = node.get("_target_")
    if not isinstance(target_path, str):
        return
    try:
        target = hydra.utils.get_object(target_path)
    except Exception as error:  # hydra wraps the import error; keep its cause
        cause = error.__cause__ or error
        errors.append(f"{path}._target_: cannot import {target_path!r}: {cause}")
        return
    allowed = accepted_keys(target)
    for key in node:
        key = str(key)
        if allowed is not None and key not in HYDRA_KEYS and key not in allowed:
            errors.append(
                f"{path}.{key}: unknown key for {target_path}"
                f"{suggest(key, allowed)} (valid: {', '.join(sorted(allowed))})"
            )
            continue
        if OmegaConf.is_interpolation(node, key):
            continue  # e.g. model.masking: ${masking}, checked where it is defined
        child = node._get_node(key)
        if isinstance(child, DictConfig) and "_target_" in child:
            check_target_node(child, f"{path}.{key}", errors)
        elif isinstance(child, ListConfig):
            for i, item in enumerate(child):
                if isinstance(item, DictConfig) and "_target_" in item:
                    check_target_node(item, f"{path}.{key}[{i}]", errors)


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a config ``value`` fits a schema field's ``annotation`` (ints pass for floats)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return isinstance(value, (list, tuple, ListConfig)) and all(
            _type_ok(v, item) for v in value
        )
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def check_plain_node(node: DictConfig, path: str, schema: type, errors: list[str]) -> None:
    """Check ``node`` against a dataclass ``schema``: unknown keys, missing required keys, types."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    values: dict = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
    for key in node:
        key = str(key)
        if key not in fields:
            errors.append(
                f"{path}.{key}: unknown key{suggest(key, set(fields))} "
                f"(valid: {', '.join(sorted(fields))})"
            )
            continue
        value = values[key]
        if not _type_ok(value, hints[key]):
            expected = getattr(hints[key], "__name__", str(hints[key]))
            errors.append(f"{path}.{key} must be {expected}, got {value!r}")
    for name, field in fields.items():
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if required and name not in node:
            errors.append(f"{path}.{name} is required ({schema.__name__})")


def check_schemas(cfg: DictConfig) -> list[str]:
    """Every schema error of ``cfg`` (empty list when the keys and types are valid)."""
    errors: list[str] = []
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            check_target_node(node, group, errors)
    for group in ENTRY_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            for name in node:
                entry = node.get(name)
                if isinstance(entry, DictConfig):
                    check_target_node(entry, f"{group}.{name}", errors)
    plain: dict[str, type] = {"backbone": BackboneSchema}
    optim_schema = OPTIM_SCHEMAS.get(str(OmegaConf.select(cfg, "model._target_")))
    if optim_schema is not None:
        plain["model.optim"] = optim_schema
    for path, schema in plain.items():
        node = OmegaConf.select(cfg, path)
        if isinstance(node, DictConfig):
            check_plain_node(node, path, schema, errors)
    name = OmegaConf.select(cfg, "backbone.name")
    if name is not None:
        from videomae.models.registry import SIZES

        if name not in SIZES:
            errors.append(
                f"backbone.name: unknown backbone {name!r}{suggest(str(name), set(SIZES))} "
                f"(known: {', '.join(SIZES)})"
            )
    return errors
