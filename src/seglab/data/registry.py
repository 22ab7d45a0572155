"""One registry of the datasets the training engine can read, filled where each is defined.

Adding a dataset means adding one module (or function) that registers a factory::

    @register_dataset("my_scans", needs_root=True)
    def _my_scans(cfg: dict, split: str, train: bool) -> Dataset:
        ...

``cfg`` is the whole training config (see :mod:`seglab.engine.config`), ``split`` is ``train``,
``val`` or ``test`` and ``train`` says whether to augment. The config's ``data.dataset`` choices,
its check that ``data.root`` is given, and the trainer all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows of a dataset."""

    name: str
    factory: Callable[[dict, str, bool], Any]
    needs_root: bool = False  # data.root must name the dataset's folder
    instance: bool = False  # items are (image, detection target) for instance models


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, needs_root: bool = False, instance: bool = False):
    """Decorator: register ``factory(cfg, split, train)`` under ``name``."""

    def wrap(factory: Callable[[dict, str, bool], Any]):
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


def make_dataset(cfg: dict, split: str, train: bool):
    """The dataset of ``split`` ("train", "val" or "test") that ``cfg['data']`` describes."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    return dataset_info(cfg["data"]["dataset"]).factory(cfg, split, train)


def split_name(cfg: dict, split: str) -> str | None:
    """The folder or list name the config gives ``split`` (``data.train_split`` ...)."""
    return cfg["data"][f"{split}_split"]


def synthetic_args(cfg: dict, split: str) -> tuple[int, int]:
    """(number of items, seed) of a synthetic split: disjoint seeds per split."""
    d = cfg["data"]
    offset = {"train": 0, "val": 100_000, "test": 200_000}[split]
    return d[f"n_{split}"], cfg["train"]["seed"] + offset
