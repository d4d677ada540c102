"""Custom indicators from the user's folders: each ``*.py`` there is imported once, and what it
registers with ``indicators.registry.indicator`` is listed and computed like a built-in.

The files are the user's own Python, run with the user's rights (like a notebook cell); formulas
typed by desk users never come here (they go through ``indicators.formula``, which runs no Python).
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

from . import config

_loaded: dict[Path, str] = {}  # file -> module name


class PluginError(ValueError):
    """A custom indicator file failed to load; the message names the file and line."""


def load_user_indicators(dirs=None) -> list[Path]:
    """Import the indicator files not imported yet; returns the files loaded now."""
    loaded = []
    for folder in dirs if dirs is not None else config.indicator_dirs():
        folder = Path(folder)
        if not folder.is_dir():
            raise PluginError(f"custom indicator folder {folder} does not exist")
        for path in sorted(folder.glob("*.py")):
            path = path.resolve()
            if path in _loaded:
                continue
            name = f"tradeflow_user_indicators.{path.stem}_{len(_loaded)}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[name]
                frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__))
                              if Path(f.filename).resolve() == path), None)
                where = f", line {frame.lineno}" if frame else ""
                raise PluginError(f"{path}{where}: {type(exc).__name__}: {exc}") from exc
            _loaded[path] = name
            loaded.append(path)
    return loaded
