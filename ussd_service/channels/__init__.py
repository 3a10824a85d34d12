"""Gateway dialects: one module per convention, each exporting a ``DIALECT``.

A module of this package that defines ``DIALECT`` (a ``dialect.Dialect``) is
a gateway the service speaks: its routes are served, described in the
OpenAPI document, and its client half drives the simulator and the tests.
Adding a gateway is adding a module here; nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil

from ussd_service.channels.dialect import Dialect


def _discover() -> tuple[Dialect, ...]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        dialect = getattr(module, "DIALECT", None)
        if isinstance(dialect, Dialect):
            found.append(dialect)
    return tuple(found)


#: Every dialect, by module name.
DIALECTS: tuple[Dialect, ...] = _discover()


def dialect(name: str) -> Dialect:
    """The dialect called ``name`` (KeyError when there is none)."""
    for candidate in DIALECTS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


__all__ = ["DIALECTS", "Dialect", "dialect"]
