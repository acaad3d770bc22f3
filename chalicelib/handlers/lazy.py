"""Request and response models named at import, built at their first use.

Chalice deploys app.py as every function, so whatever the route modules import at module level
every cold start pays: pydantic and every model of every route, before the first request has
said which one it needs. A route module names its models with `models(...)` instead (put in its
globals, so the views read as before): each name is a `ModelRef` that imports the schema module
(and pydantic) the first time it is called or an attribute of it is read (`route` validating a
body, a view building its answer, /openapi.json). Type checkers see the real classes: the module
imports them under TYPE_CHECKING.

tests/unit/test_cold_imports.py keeps pydantic and the schema modules off the API's import path.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

_lock = threading.Lock()


class ModelRef:
    """Stands for the model `name` of `module` until it is used; then behaves as the class."""

    __slots__ = ("_module", "_name", "_model")

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name
        self._model: Any = None

    def resolve(self) -> Any:
        if self._model is None:
            with _lock:  # chalice local serves first requests on threads at once
                if self._model is None:
                    self._model = getattr(importlib.import_module(self._module), self._name)
        return self._model

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.resolve(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<model {self._module}.{self._name}{'' if self._model is None else ' (built)'}>"


def models(module: str, *names: str) -> dict[str, ModelRef]:
    """A ModelRef per name of `module`, for the route module's globals."""
    return {name: ModelRef(module, name) for name in names}


def resolve(model: Any) -> Any:
    """The class a ModelRef stands for (any other value as it is)."""
    return model.resolve() if isinstance(model, ModelRef) else model
