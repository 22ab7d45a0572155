"""One registry of the datasets the training engine can read, filled where each is defined.

Adding a dataset means adding one module (or function) that registers a factory::

    @register_dataset("my_scans", needs_root=True)
    def _my_scans(data: dict, split: str, train: bool, seed: int) -> Dataset:
        ...

``data`` is the ``data`` section of a training config (see :mod:`seglab.engine.config`), ``split``
is ``train``, ``val`` or ``test``, ``train`` says whether to augment and ``seed`` is the run's seed
(for data that is generated). The data layer reads nothing else of the config. The config's ``data.dataset`` choices,
its check that ``data.root`` is given, and the trainer all read this registry.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows of a dataset."""

    name: str
    factory: Callable[[dict, str, bool, int], Any]
    needs_root: bool = False  # data.root must name the dataset's folder
    instance: bool = False  # items are (image, detection target) for instance models


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, needs_root: bool = False, instance: bool = False):
    """Decorator: register ``factory(data, split, train, seed)`` under ``name``."""

    def wrap(factory: Callable[[dict, str, bool, int], Any]):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = DatasetInfo(name, factory, needs_root, instance)
        return factory

    return wrap


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    """The registry's entry for dataset ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return _REGISTRY[name]


def make_dataset(data: dict, split: str, train: bool, seed: int = 0):
    """The dataset of ``split`` ("train", "val" or "test") that ``data`` (a config's ``data``
    section) describes; ``seed`` seeds generated data (the run's ``train.seed``)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if "dataset" not in data and isinstance(data.get("data"), dict):  # a whole config
        warnings.warn(
            "make_dataset takes the config's data section (and seed=): "
            "make_dataset(cfg['data'], split, train, seed=cfg['train']['seed'])",
            FutureWarning,
            stacklevel=2,
        )
        data, seed = data["data"], data.get("train", {}).get("seed", seed)
    return dataset_info(data["dataset"]).factory(data, split, train, seed)


def split_name(data: dict, split: str) -> str | None:
    """The folder or list name the data section gives ``split`` (``train_split`` ...)."""
    return data[f"{split}_split"]


def synthetic_args(data: dict, split: str, seed: int) -> tuple[int, int]:
    """(number of items, seed) of a synthetic split: disjoint seeds per split."""
    offset = {"train": 0, "val": 100_000, "test": 200_000}[split]
    return data[f"n_{split}"], seed + offset
