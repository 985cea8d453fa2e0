"""Torso registry: build any torso from a name or a 'package.module:Name' string.

    @register_torso("my_torso")          # refuses a name that is already taken
    class MyTorso(nn.Module): ...

    torso = make_torso("soft_moe", num_experts=4)
    torso = make_torso("my_pkg.nets:MyTorso", width=2)   # no edit to this package needed
    name, kwargs = torso_spec(config.torso)  # the config block's keys for this torso

A registered object is a Flax module class (its dataclass fields are its keyword arguments) or
any callable returning a module (its signature's keyword arguments are). The torso contract is
`features, aux = torso(x, train=...)` (see `offline_moe.networks`).
"""

import contextlib
import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# Dataclass fields every Flax module has; never torso hyper-parameters. `name` in a torso config
# block is the torso's registry name, not the Flax module name.
_MODULE_FIELDS = frozenset({"parent", "name"})


class TorsoError(ValueError):
    """Unknown torso name, unresolvable path, or keyword arguments the torso does not accept."""


def register_torso(name: str) -> Callable:
    """Decorator registering a torso class (or factory) under `name`; duplicates are refused."""

    def decorator(factory):
        if name in _REGISTRY:
            raise TorsoError(
                f"torso {name!r} is already registered (by {_describe(_REGISTRY[name])}); "
                "pick another name or use temporary_torso() in tests"
            )
        if ":" in name:
            raise TorsoError(f"torso name {name!r} must not contain ':' (reserved for paths)")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_torsos() -> list[str]:
    """Names of all registered torsos, sorted."""
    return sorted(_REGISTRY)


@contextlib.contextmanager
def temporary_torso(name: str, factory: Callable[..., nn.Module]) -> Iterator[None]:
    """Registers `factory` under `name` for the duration of a `with` block (for tests)."""
    register_torso(name)(factory)
    try:
        yield
    finally:
        _REGISTRY.pop(name, None)


def resolve_torso(name_or_path: str) -> Callable[..., nn.Module]:
    """Returns the torso class/factory for a registered name or a 'package.module:Name' path."""
    if not isinstance(name_or_path, str):
        raise TorsoError(f"torso must be a name or 'package.module:Name', got {name_or_path!r}")
    if ":" in name_or_path:
        module_name, _, attr = name_or_path.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as e:
            raise TorsoError(
                f"torso path {name_or_path!r}: cannot import module {module_name!r} ({e})"
            ) from e
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise TorsoError(
                    f"torso path {name_or_path!r}: module {module_name!r} has no attribute {attr!r}"
                )
            obj = getattr(obj, part)
        if not callable(obj):
            raise TorsoError(f"torso path {name_or_path!r} names {obj!r}, which is not callable")
        return obj
    if name_or_path not in _REGISTRY:
        raise TorsoError(
            f"unknown torso {name_or_path!r}; valid torsos: {', '.join(list_torsos())} "
            "(or a 'package.module:Name' path)"
        )
    return _REGISTRY[name_or_path]


def torso_kwarg_names(name_or_path: str) -> list[str]:
    """The keyword arguments (hyper-parameters) the torso accepts."""
    return _kwarg_names(resolve_torso(name_or_path))


def filter_torso_kwargs(name_or_path: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Keeps only the entries of a flat torso config block that this torso accepts.

    One config block serves all torsos (name, encoder, width, num_experts, ...); e.g. `baseline`
    ignores `num_experts` and `soft_moe` ignores `width`. `name` is always dropped.
    """
    valid = set(torso_kwarg_names(name_or_path))
    return {k: v for k, v in dict(kwargs).items() if k in valid}


def make_torso(name_or_path: str, **kwargs) -> nn.Module:
    """Builds a torso module by registered name or 'package.module:Name' path.

    Raises:
      TorsoError: unknown name/path, or a keyword argument the torso does not accept (the error
        names the torso and lists its valid keyword arguments).
    """
    factory = resolve_torso(name_or_path)
    valid = _kwarg_names(factory)
    bad = sorted(set(kwargs) - set(valid))
    if bad and not _accepts_var_kwargs(factory):
        raise TorsoError(
            f"torso {name_or_path!r} does not accept {', '.join(map(repr, bad))}; "
            f"valid keyword arguments: {', '.join(valid) or '(none)'}"
        )
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise TorsoError(f"torso {name_or_path!r} built {type(module).__name__}, not a Flax module")
    return module


def is_builtin_torso(name_or_path: str) -> bool:
    """True for a torso this package registers (baseline, soft_moe, ...), False otherwise."""
    if ":" in name_or_path:
        return False
    module = getattr(resolve_torso(name_or_path), "__module__", "") or ""
    return module.startswith("offline_moe.")


def torso_spec(block: Mapping[str, Any], *, where: str = "config.torso") -> tuple[str, dict]:
    """(name, keyword arguments) of the torso a config block names (`configs.common.torso_block`).

    A key set in the block (not None) is passed and must be accepted by the torso. The
    `builtin` sub-block's values go to the built-in torsos only, each taking the keys it
    accepts, under the keys set. A torso of your own thus keeps its own defaults. `noisy=False`
    is not passed to a torso without a `noisy` field (it has no noisy layers).

    Raises:
      TorsoError: no name, or a set key the torso does not accept (naming torso and key).
    """
    if "name" not in block:
        raise TorsoError(f"{where}: the torso block needs a 'name' key, got keys {sorted(block)}")
    name = block["name"]
    factory = resolve_torso(name)
    valid = set(_kwarg_names(factory))
    kwargs = {}
    if is_builtin_torso(name):
        builtin = dict(block.get("builtin") or {})
        kwargs.update({k: v for k, v in builtin.items() if k in valid and v is not None})
    for key, value in block.items():
        if key in ("name", "builtin") or value is None:
            continue
        if key not in valid and not _accepts_var_kwargs(factory):
            if key == "noisy" and value is False:
                continue
            hint = (
                " (DER's noisy torso layers: give the torso a `noisy` field that makes its "
                f"hidden layer noisy, or set {where}.noisy=False)"
                if key == "noisy"
                else f" (set {where}.{key}=None or give the torso that field)"
            )
            raise TorsoError(
                f"{where}.{key}={value!r}: torso {name!r} does not accept {key!r}{hint}; "
                f"its keyword arguments: {', '.join(sorted(valid)) or '(none)'}"
            )
        kwargs[key] = value
    return name, kwargs


def torso_from_config(block: Mapping[str, Any]) -> nn.Module:
    """Builds the torso a config block names (see `torso_spec` for which keys it gets)."""
    name, kwargs = torso_spec(block)
    return make_torso(name, **kwargs)


def count_params(tree) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))


def torso_param_count(torso: nn.Module, input_shape=(1, 84, 84, 4)) -> int:
    """Parameter count of a torso, from shapes only (`jax.eval_shape`: nothing is compiled)."""
    x = jax.ShapeDtypeStruct(input_shape, jnp.float32)
    shapes = jax.eval_shape(lambda x: torso.init(jax.random.key(0), x, train=False), x)
    return count_params(shapes)


def _kwarg_names(factory) -> list[str]:
    if inspect.isclass(factory) and dataclasses.is_dataclass(factory):
        return [
            f.name
            for f in dataclasses.fields(factory)
            if f.init and f.name not in _MODULE_FIELDS and not f.name.startswith("_")
        ]
    params = inspect.signature(factory).parameters.values()
    return [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _MODULE_FIELDS
    ]


def _accepts_var_kwargs(factory) -> bool:
    if inspect.isclass(factory) and dataclasses.is_dataclass(factory):
        return False
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())


def _describe(factory) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', factory)}"
