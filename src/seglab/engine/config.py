"""The training configuration: one schema, defaults for every field, and a message that names
the key when something is wrong. YAML files give the fields; ``--set key.sub=value`` overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .._checks import check_positive_int
from .._constraints import Interval, Options, validate

#: Every field and its default. A field set to a dict here is a section; anything not listed is
#: an error ("model.options" is free-form: it goes to the model builder).
DEFAULTS: dict[str, Any] = {
    "data": {
        # a registered dataset (seglab.data.list_datasets()): synthetic | nuclei | folder | voc |
        # camvid | cityscapes | ade20k | coco (semantic); nuclei_instances | coco_instances |
        # instance_folder | synthetic_instances (mask_rcnn)
        "dataset": "synthetic",
        "root": None,  # folder: the dataset folder
        "classes": None,  # folder: class names, index = mask value
        "ignore_index": 255,
        "augmented": False,  # voc: train on the SBD-augmented list
        "annotations": None,  # coco_instances: {train: a.json, val: b.json, test: c.json}
        "bad_annotations": "raise",  # coco_instances: raise | skip (reported by annotation id)
        "contiguous_labels": None,  # coco_instances: map category ids to 1..K (None: if id 0 used)
        "train_split": "train",
        "val_split": "val",
        "test_split": "test",
        "size": [64, 64],  # synthetic: scene size
        "n_train": 64,  # synthetic: scenes per split
        "n_val": 16,
        "n_test": 16,
        "tile": 64,  # nuclei: training tile size
        "patches_per_image": 256,  # patch_classifier: centres drawn from each training image
        "balanced_patches": True,  # patch_classifier: as many centres from every class present
        "crop": None,  # random crop for training
        "scale": [1.0, 1.0],  # random scale range for training
        "hflip": True,
        "vflip": False,
        "color_jitter": 0.0,
    },
    "model": {"name": "unet", "options": {}, "pretrained": None},  # pretrained: a seglab checkpoint
    "loss": {"name": "ce", "class_weights": None, "dice_weight": 1.0},  # ce | dice | ce+dice
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9},
    "schedule": {"name": "poly", "power": 0.9, "warmup_iters": 0},  # poly | cosine | constant
    "train": {
        "epochs": 10,
        "batch_size": 8,
        "grad_accum": 1,
        "clip_grad": None,
        "amp": "auto",  # auto (on for CUDA) | true | false
        "channels_last": "auto",
        "eval_every": 1,
        "save_every": 1,  # epochs between checkpoints (the last epoch is always saved)
        "seed": 0,
        "device": "auto",
        "num_workers": 0,
        "tensorboard": "auto",  # auto: log to OUT/tensorboard when the tensorboard package is there
    },
    "out": "runs/seglab",
}

_CHOICES = {
    "data.bad_annotations": ("raise", "skip"),
    "loss.name": ("ce", "dice", "ce+dice"),
    "optimizer.name": ("adamw", "sgd"),
    "schedule.name": ("poly", "cosine", "constant"),
}
_FREE = {"model.options"}

_POSITIVE_INT, _COUNT = Interval(int, 1), Interval(int, 0)
_PATH = (str, None)
_AUTO_BOOL = (bool, Options(("auto",)))
#: What every key of :data:`DEFAULTS` accepts (a test checks that none is missing); choices that
#: come from registries (datasets, models) are checked apart.
CONSTRAINTS: dict[str, Any] = {
    "data.dataset": str,
    "data.root": _PATH,
    "data.classes": (list, None),
    "data.ignore_index": Interval(int, 0, 65535),
    "data.augmented": bool,
    "data.annotations": (dict, None),
    "data.bad_annotations": Options(("raise", "skip")),
    "data.contiguous_labels": (bool, None),
    "data.train_split": str,
    "data.val_split": str,
    "data.test_split": str,
    "data.size": list,
    "data.n_train": _POSITIVE_INT,
    "data.n_val": _POSITIVE_INT,
    "data.n_test": _POSITIVE_INT,
    "data.tile": _POSITIVE_INT,
    "data.patches_per_image": _POSITIVE_INT,
    "data.balanced_patches": bool,
    "data.crop": (Interval(int, 1), list, None),
    "data.scale": list,
    "data.hflip": bool,
    "data.vflip": bool,
    "data.color_jitter": Interval(float, 0, 1),
    "model.name": str,
    "model.options": dict,
    "model.pretrained": _PATH,
    "loss.name": Options(("ce", "dice", "ce+dice")),
    "loss.class_weights": (list, Options(("median_frequency",)), None),
    "loss.dice_weight": Interval(float, 0),
    "optimizer.name": Options(("adamw", "sgd")),
    "optimizer.lr": Interval(float, 0, None, "neither"),
    "optimizer.weight_decay": Interval(float, 0),
    "optimizer.momentum": Interval(float, 0, 1),
    "schedule.name": Options(("poly", "cosine", "constant")),
    "schedule.power": Interval(float, 0),
    "schedule.warmup_iters": _COUNT,
    "train.epochs": _POSITIVE_INT,
    "train.batch_size": _POSITIVE_INT,
    "train.grad_accum": _POSITIVE_INT,
    "train.clip_grad": (Interval(float, 0, None, "neither"), None),
    "train.amp": _AUTO_BOOL,
    "train.channels_last": _AUTO_BOOL,
    "train.eval_every": _POSITIVE_INT,
    "train.save_every": _POSITIVE_INT,
    "train.seed": _COUNT,
    "train.device": str,
    "train.num_workers": _COUNT,
    "train.tensorboard": _AUTO_BOOL,
    "out": str,
}


def leaves(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train.epochs": 10, ...}``: every value of a config by its dotted key."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in _FREE and dotted not in _MAPPINGS:
            out |= leaves(value, dotted + ".")
        else:
            out[dotted] = value
    return out


_MAPPINGS = {"data.annotations"}  # values that are mappings, not sections


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


def _merge(base: dict, update: dict, prefix: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            allowed = ", ".join(sorted(base))
            raise ConfigError(f"unknown config key {dotted!r}; allowed here: {allowed}")
        if isinstance(base[key], dict) and dotted not in _FREE:
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config key {dotted!r} must be a section (a mapping), got {value!r}"
                )
            out[key] = _merge(base[key], value, dotted + ".")
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``"train.epochs=3"`` -> ``{"train": {"epochs": 3}}`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"`set` expects key=value, got {text!r}")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"bad key in `set` {text!r}")
    node: dict = {}
    cur = node
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = yaml.safe_load(value)
    return node


def _validate(cfg: dict) -> dict:
    from ..data.registry import dataset_info, list_datasets

    try:
        validate(leaves(cfg), CONSTRAINTS)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    allowed = {"data.dataset": tuple(list_datasets()), **_CHOICES}
    for dotted, choices in allowed.items():
        section, key = dotted.split(".")
        if cfg[section][key] not in choices:
            raise ConfigError(
                f"{dotted} must be one of {', '.join(choices)}; got {cfg[section][key]!r}"
            )
    for key in ("epochs", "batch_size", "grad_accum", "eval_every", "save_every"):
        try:
            check_positive_int(cfg["train"][key], f"train.{key}")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    size = cfg["data"]["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ConfigError(f"data.size must be [height, width], two integers; got {size!r}")
    lr = cfg["optimizer"]["lr"]
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError(f"optimizer.lr must be a positive number, got {lr!r}")
    from ..models import list_models

    if cfg["model"]["name"] not in list_models():
        raise ConfigError(
            f"unknown model {cfg['model']['name']!r}: model.name must be one of "
            f"{', '.join(list_models())} (see 'seglab models')"
        )
    if not isinstance(cfg["model"]["options"], dict):
        raise ConfigError("model.options must be a mapping of builder keyword arguments")
    if cfg["data"]["dataset"] == "folder" and not cfg["data"]["classes"]:
        raise ConfigError("data.dataset 'folder' needs data.root and data.classes")
    if dataset_info(cfg["data"]["dataset"]).needs_root and not cfg["data"]["root"]:
        raise ConfigError(
            f"data.dataset {cfg['data']['dataset']!r} needs data.root (the extracted dataset folder)"
        )
    return cfg


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> dict:
    """Defaults, then the YAML file, then each ``key=value`` override; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of config sections")
        cfg = _merge(cfg, data)
    for text in overrides:
        cfg = _merge(cfg, parse_override(text))
    return _validate(cfg)
