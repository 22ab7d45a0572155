"""The sliding-window baseline and its fully convolutional twin.

The naive way to segment with a classifier: cut a ``P x P`` patch around every pixel and classify
its centre (:func:`segment_sliding`). It works, and it is slow, because neighbouring patches
overlap almost entirely and the network recomputes the same features for each of them.

:func:`to_fully_convolutional` computes every patch at once with the *same weights*:

* each fully connected layer becomes a convolution (the first one with the kernel size of the
  last feature map, the others 1 x 1), because a linear layer on a flattened ``C x s x s`` map is a
  ``s x s`` convolution evaluated at one place;
* every ``k x k`` max pooling of stride ``k`` keeps its window but gets stride 1, and every layer
  after it reads its input with a dilation multiplied by ``k`` (the *dilation* or *a trous* trick).
  A strided network would only produce the patches whose corner falls on the pooling grid
  (1 out of ``k^2`` per pooling); removing the stride computes all the grid offsets, and the
  dilation makes each layer read the samples it would have read on its own grid. The result is the
  same as *shift-and-stitch* (Long et al. 2015, section 3.2): running the strided net on the
  ``k^2`` shifted inputs and interleaving the outputs, in one pass instead of ``k^2``.

The input is reflect-padded by ``P // 2`` so the output has one class score per input pixel and
equals the sliding window's map. Convolutions inside the classifier use no padding ("valid"), so a
patch's prediction depends on that patch only, which is what makes the two methods agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_positive_int
from .._constraints import Interval
from .registry import register_model


class PatchClassifier(nn.Module):
    """A small CNN that classifies the centre pixel of a ``patch_size x patch_size`` patch.

    ``convs[i]`` valid 3 x 3 convolutions (+ batch norm + ReLU) then a 2 x 2 max pool, for each
    stage ``i``; then two fully connected layers (``fc_width`` hidden units). The width is the same
    in every stage: the dense twin computes every layer at full resolution, so deep, wide layers
    would cost it as much as the early ones (the early, high-resolution layers are where the
    sliding window wastes its time).

    Input (B, in_channels, P, P) -> (B, num_classes) logits for the centre pixels.
    """

    def __init__(
        self,
        patch_size: int = 33,
        num_classes: int = 2,
        in_channels: int = 3,
        width: int = 32,
        convs: tuple[int, ...] = (2, 1, 1),
        fc_width: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_patch_size(patch_size)
        convs = tuple(int(c) for c in convs)
        if not convs or any(c < 1 for c in convs):
            raise ValueError(f"convs must list at least one stage of >= 1 convolution, got {convs}")
        for name, v in (("width", width), ("fc_width", fc_width), ("num_classes", num_classes)):
            check_positive_int(v, f"{name}")
        size, layers, c_in = patch_size, [], in_channels
        for n in convs:
            for _ in range(n):
                layers += [nn.Conv2d(c_in, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                c_in, size = width, size - 2
            layers.append(nn.MaxPool2d(2))
            size //= 2
        if size < 1:
            smallest = _smallest_patch(convs)
            raise ValueError(
                f"patch_size {patch_size} is too small for {len(convs)} stages {convs}: the "
                f"feature map would vanish; use patch_size >= {smallest} or fewer stages"
            )
        self.patch_size, self.num_classes, self.in_channels = patch_size, num_classes, in_channels
        self.feature_size = size  # side of the last feature map, the first FC layer's input
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * size * size, fc_width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc_width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        p = self.patch_size
        if x.dim() != 4 or x.shape[-2:] != (p, p):
            raise ValueError(
                f"PatchClassifier takes (B, C, {p}, {p}) patches, got {tuple(x.shape)}; segment "
                "a whole image with segment_sliding(model, image) or to_fully_convolutional(model)"
            )
        return self.classifier(self.features(x))


def _smallest_patch(convs: tuple[int, ...]) -> int:
    size = 1
    for n in reversed(convs):
        size = size * 2 + 2 * n
    return size + 1 - size % 2  # odd


def check_patch_size(patch_size: int) -> None:
    """A patch size, checked: an odd integer >= 3, so the patch has a centre pixel."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 3:
        raise ValueError(f"patch_size must be an odd integer >= 3, got {patch_size!r}")
    if patch_size % 2 == 0:
        raise ValueError(
            f"patch_size must be odd so that the patch has a centre pixel, got {patch_size}"
        )


@register_model(
    1,
    "P x P patches (P = patch_size, odd); whole images via its dense twin",
    "sliding-window baseline (Ciresan et al., NIPS 2012)",
    None,
    2,
    constraints={
        "patch_size": Interval(int, 3),
        "width": Interval(int, 1),
        "convs": (tuple, list),
        "fc_width": Interval(int, 1),
        "dropout": Interval(float, 0, 1, "left"),
    },
)
def patch_classifier(
    num_classes: int = 2, in_channels: int = 3, patch_size: int = 33, **options
) -> PatchClassifier:
    """Registry builder: ``build("patch_classifier", num_classes=2, patch_size=33, width=32)``."""
    return PatchClassifier(patch_size, num_classes, in_channels, **options)


def _as_chw(image, in_channels: int) -> torch.Tensor:
    """A (C, H, W) float tensor, or an (H, W[, C]) numpy image (uint8 scaled to [0, 1])."""
    if isinstance(image, np.ndarray):
        from ..image import to_rgb_float

        if image.ndim == 3 and image.shape[2] == in_channels and in_channels != 3:
            arr = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
        else:
            arr = to_rgb_float(image)
        image = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if not isinstance(image, torch.Tensor):
        raise ValueError(
            f"image must be a (C, H, W) tensor or an (H, W, C) numpy array, got {type(image)}"
        )
    if image.dim() != 3 or image.shape[0] != in_channels:
        raise ValueError(
            f"image must be ({in_channels}, H, W) for this model, got shape {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        image = image.float() / 255.0
    return image


def _check_fits(patch_size: int, h: int, w: int) -> None:
    if patch_size > min(h, w):
        raise ValueError(
            f"patch size {patch_size} is larger than the image ({h} x {w}); use an image of at "
            f"least {patch_size} x {patch_size} or a classifier with smaller patches"
        )


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def segment_sliding(
    model: PatchClassifier,
    image,
    stride: int = 1,
    batch_size: int = 1024,
    progress: bool = True,
) -> torch.Tensor:
    """The naive method: classify one patch per output pixel.

    ``image`` is a (C, H, W) tensor (or an (H, W, 3) array); the image is reflect-padded by
    ``P // 2`` so every pixel has a patch centred on it. With ``stride`` s only the pixels
    ``[::s, ::s]`` are classified, giving a ``(ceil(H / s), ceil(W / s))`` map equal to the stride-1
    map subsampled. Patches are cut from a strided view (no copy of the whole patch stack) and
    classified ``batch_size`` at a time on the model's device. Returns the (H', W') long map on CPU.
    """
    check_positive_int(stride, "stride")
    check_positive_int(batch_size, "batch_size")
    p = getattr(model, "patch_size", None)
    if p is None:
        raise ValueError("segment_sliding needs a patch classifier (a model with .patch_size)")
    check_patch_size(p)
    in_channels = getattr(model, "in_channels", 3)
    x = _as_chw(image, in_channels)
    _, h, w = x.shape
    _check_fits(p, h, w)
    device, dtype = _model_device_dtype(model)
    r = p // 2
    padded = F.pad(x[None].to(device, dtype), (r, r, r, r), mode="reflect")[0]
    windows = padded.unfold(1, p, stride).unfold(2, p, stride)  # (C, nH, nW, P, P): a view
    n_h, n_w = math.ceil(h / stride), math.ceil(w / stride)
    windows = windows[:, :n_h, :n_w]
    total = n_h * n_w
    out = torch.empty(total, dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        from tqdm.auto import tqdm

        starts = range(0, total, batch_size)
        with torch.inference_mode():
            for s in tqdm(starts, desc="patches", disable=not progress, leave=False, unit="batch"):
                idx = torch.arange(s, min(s + batch_size, total), device=device)
                batch = windows[:, idx // n_w, idx % n_w].permute(1, 0, 2, 3)
                out[s : s + len(idx)] = model(batch.contiguous()).argmax(1).cpu()
    finally:
        model.train(was_training)
    return out.view(n_h, n_w)


class DensePatchClassifier(nn.Module):
    """The fully convolutional twin of a :class:`PatchClassifier` (see the module docstring):
    (B, C, H, W) -> (B, num_classes, H, W) logits, where pixel (y, x) holds the classifier's
    output for the patch centred on it (reflect padding at the edges)."""

    def __init__(self, body: nn.Sequential, patch_size: int, num_classes: int, in_channels: int):
        super().__init__()
        self.body = body
        self.patch_size, self.num_classes, self.in_channels = patch_size, num_classes, in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's (or network's) output for ``x``; see the class docstring."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a (B, {self.in_channels}, H, W) batch, got shape {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        _check_fits(self.patch_size, h, w)
        r = self.patch_size // 2
        y = self.body(F.pad(x, (r, r, r, r), mode="reflect"))
        # a pool that drops a trailing row leaves a footprint < P: the extra outputs are
        # the patches starting past the image, so the first H x W are the centred ones
        return y[..., :h, :w]


def to_fully_convolutional(model: PatchClassifier) -> DensePatchClassifier:
    """The same weights as a fully convolutional network that classifies every pixel in one pass.

    Linear layers become convolutions, stride-k pools become stride-1 pools and every later layer
    is dilated by k (see the module docstring). The twin has exactly the model's parameters
    (copied, reshaped) and is returned in eval mode: batch norm uses the running statistics, as
    the patch classifier does at inference. Its argmax equals ``segment_sliding(model, image)``.
    """
    if not isinstance(getattr(model, "features", None), nn.Sequential) or not isinstance(
        getattr(model, "classifier", None), nn.Sequential
    ):
        raise ValueError(
            "to_fully_convolutional needs a PatchClassifier-like model with .features and "
            f".classifier Sequentials, got {type(model).__name__}"
        )
    layers, dilation = _dense_features(model.features)
    layers += _dense_classifier(model.classifier, model.feature_size, dilation)
    device, dtype = _model_device_dtype(model)
    twin = DensePatchClassifier(
        nn.Sequential(*layers),
        model.patch_size,
        model.num_classes,
        getattr(model, "in_channels", 3),
    )
    return twin.to(device, dtype).eval()


def _dense_features(features: nn.Sequential) -> tuple[list[nn.Module], int]:
    """The feature layers made dense: convolutions dilated by the pooling so far, stride-k pools
    made stride 1; returns the layers and the total dilation."""
    dilation, layers = 1, []
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            if layer.stride != (1, 1) or layer.padding not in ((0, 0), "valid"):
                raise ValueError(
                    f"{layer}: only stride-1, unpadded convolutions keep a patch's prediction "
                    "independent of its neighbours"
                )
            conv = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                dilation=tuple(d * dilation for d in layer.dilation),
                groups=layer.groups,
                bias=layer.bias is not None,
            )
            conv.load_state_dict(layer.state_dict())
            layers.append(conv)
        elif isinstance(layer, nn.MaxPool2d):
            k, s = _pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size)
            if k != s or k[0] != k[1] or layer.padding not in (0, (0, 0)) or layer.dilation != 1:
                raise ValueError(f"{layer}: only k x k pools of stride k can be made dense")
            layers.append(nn.MaxPool2d(k[0], stride=1, dilation=dilation))
            dilation *= k[0]
        elif isinstance(layer, nn.BatchNorm2d):
            bn = nn.BatchNorm2d(layer.num_features, layer.eps, affine=layer.affine)
            bn.load_state_dict(layer.state_dict())
            layers.append(bn)
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Identity, nn.Dropout)):
            layers.append(layer)
        else:
            raise ValueError(f"to_fully_convolutional cannot convert layer {layer}")
    return layers, dilation


def _dense_classifier(classifier: nn.Sequential, size: int, dilation: int) -> list[nn.Module]:
    """The classifier's linear layers as convolutions: the first sees the whole (size x size)
    feature map, dilated; the others are 1 x 1."""
    layers: list[nn.Module] = []
    first = True
    for layer in classifier:
        if isinstance(layer, nn.Flatten):
            continue
        if isinstance(layer, nn.Linear):
            k = size if first else 1
            c_in = layer.in_features // (k * k)
            if c_in * k * k != layer.in_features:
                raise ValueError(f"{layer} does not take a flattened {k} x {k} feature map")
            conv = nn.Conv2d(
                c_in,
                layer.out_features,
                k,
                dilation=dilation if k > 1 else 1,
                bias=layer.bias is not None,
            )
            with torch.no_grad():
                # Flatten orders a (C, s, s) map as C-major, then rows, then columns: the order
                # of a conv kernel (out, C, kh, kw)
                conv.weight.copy_(layer.weight.reshape(conv.weight.shape))
                if layer.bias is not None:
                    conv.bias.copy_(layer.bias)
            layers.append(conv)
            first = False
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Identity, nn.Dropout)):
            layers.append(layer)
        else:
            raise ValueError(f"to_fully_convolutional cannot convert layer {layer}")
    return layers


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def as_dense(model: nn.Module) -> nn.Module:
    """The model that segments whole images: the dense twin of a patch classifier, else itself."""
    return to_fully_convolutional(model) if isinstance(model, PatchClassifier) else model


def segment_patch_fcn(model: PatchClassifier, image) -> torch.Tensor:
    """The stride-1 class map of :func:`segment_sliding`, computed by the dense twin in one pass."""
    in_channels = getattr(model, "in_channels", 3)
    x = _as_chw(image, in_channels)
    twin = to_fully_convolutional(model)
    device, dtype = _model_device_dtype(model)
    with torch.inference_mode():
        return twin(x[None].to(device, dtype)).argmax(1)[0].cpu()
