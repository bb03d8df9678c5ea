"""Typed schemas of the main config groups: misspelt keys and wrongly typed values, named.

Two kinds of check, so that no constructor signature is typed twice:

- a group (or nested node) with a ``_target_`` is checked against the signature of that target
  (:func:`inspect.signature`): every key must be a parameter of the class or function, unless it
  takes ``**kwargs``. This covers ``data``, ``model``, ``model.net``, ``masking`` (and its
  ``encoder`` / ``decoder``), ``trainer`` (``lightning.pytorch.Trainer``), ``trainer.strategy``
  and every ``callbacks.*`` / ``logger.*`` entry.
- the plain groups without a target, ``backbone`` and ``model.optim``, have dataclass schemas
  (:class:`BackboneSchema`, from the named sizes' :class:`~videomae.models.config.BackboneSize`,
  and :class:`~videomae.modules.config.OptimConfig`, the modules' own optimizer config) giving
  the allowed keys and their types.

A misspelt key is reported with the closest valid one (``data.batchsize: unknown key; did you
mean data.batch_size?``).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib.util
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from videomae.models.config import SIZES, BackboneSize
from videomae.modules.config import OptimConfig

HYDRA_KEYS = frozenset({"_target_", "_convert_", "_recursive_", "_partial_", "_args_"})
"""Keys that Hydra's ``instantiate`` reads itself; never constructor parameters."""


@dataclasses.dataclass(frozen=True)
class BackboneSchema(BackboneSize):
    """The ``backbone`` group: a named size (:class:`~videomae.models.config.BackboneSize`'s
    fields), its name and the tubelet length."""

    name: str
    tubelet_size: int


OPTIM_SCHEMAS: dict[str, type] = {
    "videomae.modules.pretrain.PretrainModule": OptimConfig,
    "videomae.modules.finetune.FinetuneModule": OptimConfig,
}
"""``model._target_`` -> the schema of its ``model.optim``."""

TARGET_GROUPS = ("data", "model", "masking", "trainer")
"""Top-level groups whose ``_target_`` signatures are checked (recursively into nested targets)."""

ENTRY_GROUPS = ("callbacks", "logger")
"""Groups made of named entries, each with its own ``_target_``."""


def closest(key: str, valid: list[str] | set[str]) -> str | None:
    """The valid name closest to ``key`` (a likely misspelling of it), or None."""
    close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key(path: str, key: str, valid: set[str], owner: str | None = None) -> str:
    """``data.batchsize: unknown key; did you mean data.batch_size?``, or without a close
    match the valid keys (of ``owner``, the target, when given)."""
    match = closest(key, valid)
    if match is not None:
        return f"{path}.{key}: unknown key; did you mean {path}.{match}?"
    where = f" for {owner}" if owner else ""
    return f"{path}.{key}: unknown key{where} (valid: {', '.join(sorted(valid))})"


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


def imported_keys(target_path: str) -> set[str] | None:
    """:func:`accepted_keys` of the object at ``target_path``, imported (ImportError naming the
    cause when it cannot be)."""
    try:
        target = hydra.utils.get_object(target_path)
    except Exception as error:  # hydra wraps the import error; keep its cause
        raise ImportError(str(error.__cause__ or error)) from error
    return accepted_keys(target)


def _module_file(module: str) -> Path | None:
    """The source file of ``module`` found without importing it (nor its packages)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    if not rest:
        return Path(spec.origin)
    if not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=256)
def static_keys(target_path: str, depth: int = 0) -> set[str] | None:
    """:func:`accepted_keys` read from the source of ``target_path`` (``package.module.Name``)
    without importing it; None when the source does not say them plainly: a ``**kwargs``
    parameter, an inherited or generated ``__init__`` (a dataclass with a base class or other
    decorators), a compiled module, a name that is neither defined nor imported by name in its
    module. A plain ``@dataclass`` gives its annotated fields."""
    module, _, name = target_path.rpartition(".")
    file = _module_file(module) if module and depth < 4 else None
    if file is None or file.suffix != ".py":
        return None
    tree = ast.parse(file.read_text(encoding="utf-8"))
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            for alias in statement.names:
                if (alias.asname or alias.name) == name:
                    return static_keys(f"{statement.module}.{alias.name}", depth + 1)
        if isinstance(statement, (ast.FunctionDef, ast.ClassDef)) and statement.name == name:
            return _definition_keys(statement, tree)
    return None


def _is_plain_dataclass(node: ast.ClassDef, tree: ast.Module) -> bool:
    """``@dataclass`` / ``@dataclass(...)`` as the only decorator, no ``__init__`` of its own,
    and base classes (if any) that are plain dataclasses of the same module."""
    if len(node.decorator_list) != 1 or _inits(node):
        return False
    decorator = node.decorator_list[0]
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    if ast.unparse(decorator) not in ("dataclass", "dataclasses.dataclass"):
        return False
    return all(_local_class(base, tree) is not None for base in node.bases) and all(
        _is_plain_dataclass(_local_class(base, tree), tree) for base in node.bases
    )


def _local_class(base: ast.expr, tree: ast.Module) -> ast.ClassDef | None:
    """The class a base-class name refers to when it is defined in the same module."""
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef) and ast.unparse(base) == statement.name:
            return statement
    return None


def _inits(node: ast.ClassDef) -> list[ast.FunctionDef]:
    """The ``__init__`` definitions of a class body (overloads left out)."""
    return [
        s
        for s in node.body
        if isinstance(s, ast.FunctionDef)
        and s.name == "__init__"
        and not any("overload" in ast.unparse(d) for d in s.decorator_list)
    ]


def _dataclass_fields(node: ast.ClassDef, tree: ast.Module) -> set[str]:
    """The fields of a plain dataclass: its bases' and its own annotated names."""
    fields = {
        s.target.id
        for s in node.body
        if isinstance(s, ast.AnnAssign)
        and isinstance(s.target, ast.Name)
        and "ClassVar" not in ast.unparse(s.annotation)
    }
    for base in node.bases:
        fields |= _dataclass_fields(_local_class(base, tree), tree)
    return fields


def _definition_keys(node: ast.FunctionDef | ast.ClassDef, tree: ast.Module) -> set[str] | None:
    """The keyword parameters of a function, or of a class's own ``__init__`` (without
    ``self``); None for ``**kwargs``, decorated classes and classes without an ``__init__``."""
    function = node
    if isinstance(node, ast.ClassDef):
        if _is_plain_dataclass(node, tree):
            return _dataclass_fields(node, tree)
        inits = _inits(node)
        if node.decorator_list or not inits:
            return None
        function = inits[-1]
    arguments = function.args
    if arguments.kwarg is not None:
        return None
    names = [a.arg for a in arguments.args]  # positional-only ones are not keywords
    if isinstance(node, ast.ClassDef) and not arguments.posonlyargs:
        names = names[1:]  # self
    return set(names) | {a.arg for a in arguments.kwonlyargs}


def check_target_node(
    node: DictConfig,
    path: str,
    errors: list[str],
    keys_of: Callable[[str], set[str] | None] = imported_keys,
) -> None:
    """Check the keys of ``node`` against its ``_target_``'s parameters (``keys_of``: imported
    by default, :func:`static_keys` to read them without importing), then its nested targets."""
    target_path = node.get("_target_")
    if not isinstance(target_path, str):
        return
    try:
        allowed = keys_of(target_path)
    except ImportError as error:
        errors.append(f"{path}._target_: cannot import {target_path!r}: {error}")
        return
    for key in node:
        key = str(key)
        if allowed is not None and key not in HYDRA_KEYS and key not in allowed:
            errors.append(unknown_key(path, key, allowed, target_path))
            continue
        if OmegaConf.is_interpolation(node, key):
            continue  # e.g. model.masking: ${masking}, checked where it is defined
        child = node._get_node(key)
        if isinstance(child, DictConfig) and "_target_" in child:
            check_target_node(child, f"{path}.{key}", errors, keys_of)
        elif isinstance(child, ListConfig):
            for i, item in enumerate(child):
                if isinstance(item, DictConfig) and "_target_" in item:
                    check_target_node(item, f"{path}.{key}[{i}]", errors, keys_of)


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
    if origin is tuple:  # a fixed-length tuple, written as a list in YAML
        items = typing.get_args(annotation)
        return (
            isinstance(value, (list, tuple, ListConfig))
            and len(value) == len(items)
            and all(_type_ok(v, item) for v, item in zip(value, items, strict=True))
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
            errors.append(unknown_key(path, key, set(fields)))
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


def check_schemas(cfg: DictConfig, light: bool = False) -> list[str]:
    """Every schema error of ``cfg`` (empty list when the keys and types are valid).

    ``light``: import nothing heavy (parameters read by :func:`static_keys`, targets it cannot
    read left to the full check)."""
    keys_of = static_keys if light else imported_keys
    errors: list[str] = []
    for group in TARGET_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            check_target_node(node, group, errors, keys_of)
    for group in ENTRY_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            for name in node:
                entry = node.get(name)
                if isinstance(entry, DictConfig):
                    check_target_node(entry, f"{group}.{name}", errors, keys_of)
    plain: dict[str, type] = {"backbone": BackboneSchema}
    optim_schema = OPTIM_SCHEMAS.get(str(OmegaConf.select(cfg, "model._target_")))
    if optim_schema is not None:
        plain["model.optim"] = optim_schema
    for path, schema in plain.items():
        node = OmegaConf.select(cfg, path)
        if isinstance(node, DictConfig):
            check_plain_node(node, path, schema, errors)
    name = OmegaConf.select(cfg, "backbone.name")
    if name is not None and name not in SIZES:
        match = closest(str(name), set(SIZES))
        advice = f"; did you mean backbone.name={match}?" if match else ""
        errors.append(
            f"backbone.name: unknown backbone {name!r}{advice} (known: {', '.join(SIZES)})"
        )
    return errors
