"""The node kinds: one module per kind, discovered when this package loads.

Every module here except ``base`` is a kind: it defines a ``NodeKind``
subclass, names it ``KIND``, and has golden test data in
``testdata/<module>.yaml``. Adding a kind is adding such a module (and its
test data); the model's ``Node`` union, the JSON Schema, the validator and
the engine pick it up from ``KINDS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, get_args

from menus.nodes.base import Checks, Edge, NodeKind, Path_

if TYPE_CHECKING:
    from menus.model import MenuFile

_NOT_KINDS = frozenset({"base"})


def _discover() -> dict[str, type[NodeKind]]:
    kinds: list[tuple[str, type[NodeKind]]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_KINDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not (isinstance(kind, type) and issubclass(kind, NodeKind)):
            raise TypeError(f"menus.nodes.{info.name} names no NodeKind subclass as KIND")
        (name,) = get_args(kind.model_fields["kind"].annotation)
        if name != info.name:
            raise TypeError(
                f"menus.nodes.{info.name} defines kind '{name}' (module and kind differ)"
            )
        kinds.append((name, kind))
    kinds.sort(key=lambda pair: (pair[1].order, pair[0]))
    return dict(kinds)


KINDS: dict[str, type[NodeKind]] = _discover()
"""Every node kind by name, in listing order (``NodeKind.order``)."""


def edges_of(node: NodeKind, model: MenuFile) -> tuple[Edge, ...]:
    """The edges of ``node`` of ``model`` (``MenuFile.graph()`` keeps them for every node)."""
    return node.edges(model)


__all__ = ["KINDS", "Checks", "Edge", "NodeKind", "Path_", "edges_of"]
