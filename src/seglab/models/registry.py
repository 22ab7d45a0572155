"""One registry of the networks seglab builds by name, filled where each is defined.

Adding a model means adding one module whose builder carries the decorator::

    @register_model(output_stride=16, inputs="any H x W", paper="Someone et al., 2026",
                    paper_params=12.3, paper_classes=21)
    def my_net(num_classes: int = 21, in_channels: int = 3, **options) -> nn.Module:
        ...

and importing that module in :mod:`seglab.models`. ``build``, ``list_models``, ``seglab models``
and the training config all read this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._constraints import Interval, validate

#: what every builder's own two parameters accept (a model adds its options' constraints)
COMMON_CONSTRAINTS: dict[str, Any] = {
    "num_classes": Interval(int, 1),
    "in_channels": Interval(int, 1),
}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a model."""

    name: str
    builder: Callable[..., nn.Module]
    output_stride: int
    inputs: str
    paper: str
    paper_params: float | None  # millions, as the paper reports (at its number of classes)
    paper_classes: int
    #: parameter name -> what it accepts (:mod:`seglab._constraints`), checked by :func:`build`
    constraints: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> None:
    """Add ``info`` to the registry (a name can be registered once)."""
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is already registered")
    _REGISTRY[info.name] = info


def register_model(
    output_stride: int,
    inputs: str,
    paper: str,
    paper_params: float | None,
    paper_classes: int,
    name: str | None = None,
    constraints: Mapping[str, Any] | None = None,
):
    """Decorator: register a builder under ``name`` (default: the function's name), with the
    ``constraints`` of its options (what each accepts: :mod:`seglab._constraints`)."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        info = ModelInfo(
            name or builder.__name__,
            builder,
            output_stride,
            inputs,
            paper,
            paper_params,
            paper_classes,
            {**COMMON_CONSTRAINTS, **(constraints or {})},
        )
        register(info)
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of the registered models."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The registry's entry for ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(list_models())}")
    return _REGISTRY[name]


def build(name: str, num_classes: int = 21, in_channels: int = 3, **options: Any) -> nn.Module:
    """Build a registered model: ``build("fcn8s", num_classes=21, backbone="vgg16")``.

    ``options`` go to the architecture (``backbone`` and ``weights_backbone`` for FCN,
    ``weights_backbone`` for SegNet/DeconvNet, ``padding``/``depth``/``width``/``upsampling`` for
    U-Net, ``dropout`` for FC-DenseNet ...). Each is checked against the constraints the model
    declared when it registered (a ValueError names the option, what it accepts and what it got).
    """
    info = model_info(name)
    validate(
        {"num_classes": num_classes, "in_channels": in_channels, **options},
        info.constraints,
        where=f"{name}: ",
    )
    known = accepted_options(info.builder)
    unknown = sorted(set(options) - known) if known is not None else []
    if unknown:  # the user's mistake, said here; a TypeError from inside a builder is a bug
        raise ValueError(
            f"{name}: unknown option(s) {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(sorted(known - {'num_classes', 'in_channels'}))}"
        )
    return info.builder(num_classes=num_classes, in_channels=in_channels, **options)


def accepted_options(builder) -> set[str] | None:
    """The keyword options a builder takes: its own parameters and, where it forwards
    ``**options`` to the model class it returns, that class's; None when anything goes."""
    import inspect
    import typing

    names: set[str] = set()
    for fn in (builder, _returned_class(builder, typing)):
        if fn is None:
            return None
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def _returned_class(builder, typing):
    try:
        returned = typing.get_type_hints(builder).get("return")
    except Exception:
        return None
    return returned if isinstance(returned, type) else None


def count_parameters(name: str, num_classes: int | None = None, **options: Any) -> int:
    """Parameters of a model built on the meta device (no memory, no initialisation cost)."""
    import torch

    info = model_info(name)
    with torch.device("meta"):
        model = build(name, num_classes=num_classes or info.paper_classes, **options)
    return sum(p.numel() for p in model.parameters())


def model_table(num_classes: int | None = None) -> list[tuple[str, ...]]:
    """Rows of ``seglab models``: name, parameters (at ``num_classes`` or the paper's), what the
    paper says, output stride, inputs and the paper; the first row is the header."""
    rows = [("model", "parameters", "paper says", "stride", "input", "paper")]
    for name in list_models():
        info = model_info(name)
        n = count_parameters(name, num_classes)
        paper = "-" if info.paper_params is None else f"paper {info.paper_params:g} M"
        classes = num_classes or info.paper_classes
        params = f"{n / 1e6:.2f} M ({classes} cl.)"
        rows.append((name, params, paper, f"/{info.output_stride}", info.inputs, info.paper))
    return rows
