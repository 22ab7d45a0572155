"""Small checks shared by the whole package: one place for each rule, one wording for each error.

Nothing here imports torch at module level, so the command line and the clustering code stay fast
to import; the torch helpers import it when called.
"""

from __future__ import annotations

import contextlib
import numbers
import re
from collections.abc import Iterator
from typing import Any


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``.

    Raises
    ------
    ValueError
        Naming ``name``, the value given and the smallest value allowed.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def parse_bytes(value: Any, name: str = "max_memory") -> int | None:
    """A memory size as bytes: an integer (bytes) or text such as ``"2GB"``, ``"512 MiB"``
    (binary units), or None. One reading of ``max_memory`` wherever it is taken."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 bytes, got {value!r}")
        return int(value)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(value))
    if not m:
        raise ValueError(f"{name} must be bytes or a size such as '2GB', got {value!r}")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


_DEVICES = "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"


def device_name(device: Any = "auto") -> str:
    """The device ``device`` names, as a string: ``"auto"`` is CUDA when a GPU is visible, else
    the CPU; asking for CUDA without a GPU is a ValueError (not a crash later). ``"cpu"`` is
    answered without importing torch (the clustering code does not need it)."""
    name = str(device) if type(device).__name__ == "device" else device
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ValueError(f"{_DEVICES}; got {device!r}")
    if name == "cpu":
        return name
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is visible; use cpu or auto")
    return name


def resolve_device(device: Any = "auto"):
    """The ``torch.device`` that ``device`` names (see :func:`device_name`)."""
    import torch

    return torch.device(device_name(device))


def model_device(model: Any):
    """The device of a module's first parameter (or buffer); the CPU for a module without any."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put ``model`` in eval mode without gradients, and restore its training flag afterwards."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)
