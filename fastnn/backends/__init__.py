"""The one registry of backends: `get_backend(name)`."""

from __future__ import annotations

import importlib
import threading

from fastnn.backends.base import Backend, Forward, Grads
from fastnn.core.hyperparameters import BACKENDS

# Imported on first use, so the NumPy reference works without loading Numba: backend "x" is
# the class XBackend of fastnn.backends.x_backend.
_REGISTRY = {name: (f"fastnn.backends.{name}_backend", f"{name.capitalize()}Backend")
             for name in BACKENDS}  # fmt: skip
_instances: dict[str, Backend] = {}
_loading: dict[str, threading.Thread] = {}  # start_loading's threads, until get_backend


def get_backend(name: str) -> Backend:
    """The backend called `name` ("numpy" or "numba")."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    loading = _loading.get(name)
    if loading is not None:
        # Numba's typing tables are not safe to read while that thread fills them: a kernel
        # called meanwhile failed with "dictionary changed size during iteration".
        loading.join()
        _loading.pop(name, None)
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


def start_loading(name: str) -> None:
    """Begin importing backend `name`, and readying what its first call needs, in a daemon
    thread: for numba about half a second of Numba's own start-up, which then overlaps the
    caller's (reading the data, whose hashing and gunzip release the GIL). Best effort: an error
    is dropped here and raised again by get_backend in the caller's thread, which waits for the
    thread to end first."""
    if name not in _REGISTRY:
        return

    def load() -> None:
        try:
            module = importlib.import_module(_REGISTRY[name][0])
            getattr(module, "warm_up", lambda: None)()
        except BaseException:  # noqa: BLE001 - get_backend reports it where it is asked for
            pass

    thread = threading.Thread(target=load, name=f"fastnn-load-{name}", daemon=True)
    _loading[name] = thread
    thread.start()


__all__ = ["BACKENDS", "Backend", "Forward", "Grads", "get_backend", "start_loading"]
