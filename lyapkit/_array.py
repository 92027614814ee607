"""Array-namespace helpers shared by the numpy and torch code paths.

The built-in maps write their equations once against an array namespace ``xp`` (numpy or torch);
these helpers find the namespace of an array without importing torch when it is not in use.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np


def is_torch_tensor(x: Any) -> bool:
    """True when ``x`` is a ``torch.Tensor`` (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def namespace_of(x: Any) -> ModuleType:
    """The array namespace (``numpy`` or ``torch``) that ``x`` belongs to."""
    if is_torch_tensor(x):
        return sys.modules["torch"]
    return np


def to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array or torch tensor to a numpy array (detached, on the CPU)."""
    if is_torch_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def import_optional(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise an ImportError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{module} is not installed; install it with `pip install lyapkit[{extra}]`"
        ) from err


def torch_device(device: Any, name: str = "device") -> Any:
    """``device`` as a ``torch.device`` that this machine has; a ValueError naming the argument
    ``name`` for a device string torch does not know, or a device that is not there (a CUDA
    device on a CPU-only torch or machine, an index past the device count, MPS off Apple
    silicon)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{name} must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
        ) from err
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(
                f"{name}={device!r}: no CUDA device is available (torch {torch.__version__}, "
                f"{build}); use 'cpu'"
            )
        if (dev.index or 0) >= count:
            raise ValueError(f"{name}={device!r}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={device!r}: MPS is not available on this machine; use 'cpu'")
    return dev
