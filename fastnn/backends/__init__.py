"""The one registry of backends: `get_backend(name)`."""

from __future__ import annotations

import importlib

from fastnn.backends.base import Backend, Forward, Grads

# Imported on first use, so the NumPy reference works without loading Numba.
_REGISTRY = {
    "numpy": ("fastnn.backends.numpy_backend", "NumpyBackend"),
    "numba": ("fastnn.backends.numba_backend", "NumbaBackend"),
}
_instances: dict[str, Backend] = {}

BACKENDS = tuple(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend called `name` ("numpy" or "numba")."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name not in _instances:
        module_name, class_name = _REGISTRY[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise ValueError(f"backend {name!r} is not available yet in this version") from exc
        _instances[name] = getattr(module, class_name)()
    return _instances[name]


__all__ = ["BACKENDS", "Backend", "Forward", "Grads", "get_backend"]
