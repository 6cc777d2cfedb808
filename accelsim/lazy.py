"""Package names imported on first use (PEP 562), so importing a package stays cheap."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_getattr(package: str, table: dict[str, str], namespace: dict) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``name`` from ``table[name]`` on first use and keeps
    it in ``namespace`` (the package's globals), so later look-ups are plain attributes."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
