"""Configs addressed by name: `--config=cql:smoke,game=Pong` is the packaged config file.

A name is a module of `offline_moe.configs` that defines `get_config` (`config_names()`); the
text after ':' is its argument, as with a path. A path to a file keeps working, relative to
the current directory as any path.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from offline_moe import configs as configs_package
from offline_moe import errors


def config_names() -> list[str]:
    """The packaged configs: modules of `offline_moe.configs` with a `get_config`."""
    names = []
    for info in pkgutil.iter_modules(configs_package.__path__):
        module = importlib.import_module(f"{configs_package.__name__}.{info.name}")
        if callable(getattr(module, "get_config", None)):
            names.append(info.name)
    return sorted(names)


def config_path(name: str) -> str:
    """The absolute path of the packaged config `name` ('cql' -> .../offline_moe/configs/cql.py).

    Raises:
      InputError: not a packaged config, naming the nearest and the valid names.
    """
    valid = config_names()
    if name not in valid:
        raise errors.unknown("config", name, valid, "or give a path to a config file")
    return os.path.join(os.path.dirname(os.path.abspath(configs_package.__file__)), f"{name}.py")


def resolve_config(text: str, *, flag: str = "config") -> str:
    """The value of a config flag with a config name replaced by the packaged file's path.

    'cql:smoke' -> '/.../offline_moe/configs/cql.py:smoke'; an existing path is returned as
    it is.

    Raises:
      InputError: neither an existing file nor a packaged config's name; the message names
        the nearest name (a repository path such as offline_moe/configs/cql.py given from
        another directory is pointed to its name).
    """
    path, sep, arg = text.partition(":")
    if os.path.isfile(path):
        return text
    stem = os.path.splitext(os.path.basename(path))[0]
    looks_like_path = os.sep in path or path.endswith(".py")
    if not looks_like_path:
        return config_path(path) + sep + arg
    fix = f"give --{flag}={stem}{sep}{arg}" if stem in config_names() else ""
    raise errors.InputError(
        "; ".join(
            p
            for p in (
                f"--{flag}: no config file {path!r} (from {os.getcwd()})",
                fix or f"give an existing file or a config name: {', '.join(config_names())}",
            )
            if p
        )
    )
