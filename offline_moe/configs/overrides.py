"""Changing a config from outside: the torso-variant grammar and the one override rule.

A torso variant is a torso name plus keyword overrides after ``@``: ``soft_moe@num_experts=4``
(several: ``@a=1@b=2``). It is how sweeps and the learning bench name a run's torso, and it
becomes the overrides ``config.torso.name=soft_moe``, ``config.torso.num_experts=4``.

An override is ``config.<dotted field>=<text>`` (or, from Python, a mapping of dotted fields to
values). `apply_overrides` is the one rule by which such text becomes a value, the rule of the
trainers' ``--config.<field>=<text>`` flags (ml_collections' config_flags): the text is parsed
by the field's type, including the type of a typed None (``config_dict.placeholder``, the unset
torso keys); booleans accept true/false, t/f, 1/0; a field that is None without a type takes the
text's Python literal, or the text itself.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping, Sequence

import ml_collections

from offline_moe import errors


@dataclasses.dataclass(frozen=True)
class TorsoVariant:
    """A torso name plus keyword overrides, e.g. soft_moe@num_experts=4.

    Attributes:
      name: registered torso name or 'pkg.module:Name'.
      kwargs: (key, value-string) pairs passed as --config.torso.<key>=<value>.
    """

    name: str
    kwargs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> TorsoVariant:
        name, *pairs = spec.split("@")
        kwargs = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise errors.InputError(
                    f"torso variant {spec!r}: expected name@key=value, got {pair!r}"
                )
            kwargs.append((key, value))
        if not name:
            raise errors.InputError(f"torso variant {spec!r} has no torso name")
        return cls(name, tuple(kwargs))

    @property
    def label(self) -> str:
        """Directory-safe label: soft_moe, soft_moe__num_experts-4, my.mod-Net."""
        base = self.name.replace(":", "-").replace("/", "-")
        extra = "".join(f"__{k}-{v}" for k, v in self.kwargs)
        return base + extra

    def overrides(self) -> list[str]:
        """['config.torso.name=soft_moe', 'config.torso.num_experts=4', ...]."""
        return [f"config.torso.name={self.name}"] + [
            f"config.torso.{k}={v}" for k, v in self.kwargs
        ]


_TRUE, _FALSE = ("1", "true", "t"), ("0", "false", "f")  # absl's boolean flag values


def parse_value(node: ml_collections.ConfigDict, key: str, text: str):
    """`text` as a value of field `key` of `node`, by the field's type (see the module doc)."""
    kind = node.get_type(key)
    if kind is bool:
        if text.lower() not in _TRUE + _FALSE:
            raise errors.InputError(f"override {key}={text!r}: expected true/false (t/f, 1/0)")
        return text.lower() in _TRUE
    if kind in (int, float, str):
        try:
            return kind(text)
        except ValueError:
            raise errors.InputError(f"override {key}={text!r}: expected {kind.__name__}") from None
    if kind in (tuple, list) or kind is type(None):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if kind is type(None):
                return text
            raise errors.InputError(
                f"override {key}={text!r}: expected a Python {kind.__name__}"
            ) from None
    return text


def split_override(override: str) -> tuple[str, str]:
    """'config.a.b=text' -> ('a.b', 'text').

    Raises:
      ValueError: not of the form config.<field>=<value>.
    """
    path, sep, value = override.partition("=")
    keys = path.split(".")
    if not sep or keys[0] != "config" or len(keys) < 2:
        raise errors.InputError(f"override {override!r}: expected config.<field>=<value>")
    return ".".join(keys[1:]), value


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[str] | Mapping[str, object]
) -> ml_collections.ConfigDict:
    """Sets fields of `config` in place and returns it.

    Args:
      config: the config.
      overrides: 'config.a.b=text' strings, whose text is parsed by the field's type
        (`parse_value`), or a mapping {'a.b': value} whose values are set as they are (the
        config's own type checks apply).

    Raises:
      ValueError: a malformed override or text that does not parse as the field's type.
      KeyError / AttributeError: a field the config does not have.
    """
    if isinstance(overrides, Mapping):
        items = [(path, value, False) for path, value in overrides.items()]
    else:
        items = [(*split_override(ov), True) for ov in overrides]
    for path, value, is_text in items:
        *parents, key = path.split(".")
        node = config
        for k in parents:
            node = node[k]
        if key not in node:
            raise KeyError(f"override {path}: the config has no field {key!r} there")
        node[key] = parse_value(node, key, value) if is_text else value
    return config
