"""Mask R-CNN (He et al., ICCV 2017), assembled from torchvision's detection parts.

The lecture's picture, part by part (attribute of the returned model in brackets):

* **CNN on the whole image**: a ResNet-18/34/50 with a feature pyramid (FPN) on top, giving
  feature maps at strides 4 to 64 [``backbone``];
* **region proposal network**: at every position of every pyramid level, anchors of a few sizes
  and aspect ratios are scored object / not object and regressed to boxes; the best, after
  non-maximum suppression, are the regions of interest [``rpn``, anchors in
  ``rpn.anchor_generator``];
* **RoI Align**: each region's features are sampled bilinearly into a fixed grid, without the
  rounding of RoI pooling, from the pyramid level that suits its size [``roi_heads.box_roi_pool``,
  ``roi_heads.mask_roi_pool``];
* **classification and box regression** per region (Faster R-CNN's head) [``roi_heads.box_head``,
  ``roi_heads.box_predictor``];
* **mask prediction**: a small FCN on each region's features predicts a ``C x 28 x 28`` mask (one
  per class; the predicted class's is used), pasted back into the image at the box
  [``roi_heads.mask_head``, ``roi_heads.mask_predictor``]. ``mask_resolution=56`` doubles the RoI
  Align grid for finer masks.

Input: a list of (3, H, W) float tensors in [0, 1] (sizes may differ; the model normalises and
resizes them to ``min_size`` / ``max_size`` itself). Training: ``model(images, targets)`` with
targets ``{"boxes": (N, 4) xyxy, "labels": (N,), "masks": (N, H, W) uint8}`` returns the five
losses. Evaluation: a list of ``{"boxes", "labels", "scores", "masks": (N, 1, H, W) float}``.
``num_classes`` counts the background (class 0): one kind of object is ``num_classes=2``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from .._constraints import Interval, Options
from ._blocks import load_matching
from .registry import register_model

BACKBONES = ("resnet18", "resnet34", "resnet50")
#: torchvision's Mask R-CNN ResNet-50 FPN head layers that depend on the number of classes
CLASS_LAYERS = ("roi_heads.box_predictor", "roi_heads.mask_predictor.mask_fcn_logits")


@register_model(
    4,
    "list of (3, H, W) images; instances out (boxes, labels, scores, masks)",
    "He, Gkioxari, Dollár & Girshick, ICCV 2017",
    None,
    91,
    constraints={
        "backbone": Options(BACKBONES),
        "mask_resolution": Options((28, 56)),
        "detections_per_img": Interval(int, 1),
        "min_size": Interval(int, 1),
        "max_size": Interval(int, 1),
        "box_score_threshold": Interval(float, 0, 1),
        "image_scale": (None, Interval(float, 0, None, "neither")),
        "trainable_backbone_layers": (None, Interval(int, 0, 5)),
    },
)
def mask_rcnn(
    num_classes: int = 2,
    in_channels: int = 3,
    backbone: str = "resnet50",
    anchor_sizes: Sequence[int] | Sequence[Sequence[int]] = (32, 64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    mask_resolution: int = 28,
    detections_per_img: int = 100,
    min_size: int = 800,
    max_size: int = 1333,
    box_score_threshold: float = 0.05,
    image_scale: float | None = None,
    weights: str | os.PathLike | None = None,
    weights_backbone: str | os.PathLike | None = None,
    trainable_backbone_layers: int | None = None,
    **detector_options,
) -> nn.Module:
    """Build a Mask R-CNN: ``build("mask_rcnn", num_classes=2, backbone="resnet18")``.

    Parameters
    ----------
    num_classes : int
        Object classes plus the background (COCO: 91 with torchvision's category ids).
    backbone : {"resnet18", "resnet34", "resnet50"}
        ``resnet18``, ``resnet34`` or ``resnet50``, each with an FPN.
    anchor_sizes : sequence of int, or of sequences of int
        One size per pyramid level (5 levels, strides 4..64), or a tuple of sizes per level.
        Small objects (cells: 8-30 pixels) want e.g. ``(8, 16, 32, 64, 128)``.
    aspect_ratios : sequence of float
        Height / width ratios of the anchors, the same at every level.
    mask_resolution : {28, 56}
        28 (the paper) or 56 (finer masks: RoI Align at 28 x 28, then the head's 2x upsampling).
    detections_per_img, min_size, max_size : int
        Detections kept per image and the internal resize (shorter side to ``min_size`` unless
        the longer would exceed ``max_size``).
    box_score_threshold : float
        The detector's own floor on box scores (torchvision's ``box_score_thresh``), before
        non-maximum suppression. Which instances a prediction reports is chosen later, by
        :func:`seglab.instances.predict_instances`'s ``score_threshold`` (0.5). (The name
        ``score_threshold`` here is deprecated: it meant this floor.)
    image_scale : float, optional
        Resize every image by this fixed factor instead (``min_size`` / ``max_size`` unused): for
        tiles and images of varying size whose objects have a known pixel size (microscopy), so
        training tiles and whole test images are seen at the same magnification.
    weights : str or path, optional
        A torchvision enum name (``"MaskRCNN_ResNet50_FPN_Weights.COCO_V1"``, needs the file in
        the torch hub cache: nothing is downloaded here) or a local ``.pth`` state dict / seglab
        checkpoint. Layers whose shape differs (the box and mask predictors when the class count
        differs) are re-initialised; their names are in ``model.reinitialized_`` and a warning.
    weights_backbone : str or path, optional
        ImageNet weights for the ResNet: enum name (``"ResNet50_Weights.IMAGENET1K_V1"``) or a
        local state dict. With any weights, batch norm is frozen, as torchvision does.
    trainable_backbone_layers : int, optional
        ResNet stages that learn (0-5); default 3 with weights, 5 from scratch.
    **detector_options
        Passed to torchvision's ``MaskRCNN``: e.g. ``rpn_pre_nms_top_n_train``,
        ``rpn_post_nms_top_n_test``, ``box_batch_size_per_image`` (fewer proposals and sampled
        regions make small CPU runs several times faster), ``box_nms_thresh``.
    """
    if "score_threshold" in detector_options:  # one word, one meaning: see box_score_threshold
        warnings.warn(
            "mask_rcnn(score_threshold=) is deprecated: it is the detector's floor, now "
            "box_score_threshold=; predict_instances(score_threshold=) chooses what is reported",
            FutureWarning,
            stacklevel=2,
        )
        box_score_threshold = detector_options.pop("score_threshold")
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import MultiScaleRoIAlign

    sizes, ratios = _check_options(
        num_classes, in_channels, backbone, mask_resolution, anchor_sizes, aspect_ratios
    )

    trunk, layers = _trunk(
        backbone, weights is not None, weights_backbone, trainable_backbone_layers
    )
    features = _resnet_fpn_extractor(trunk, layers)
    model = MaskRCNN(
        features,
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=AnchorGenerator(sizes, (ratios,) * len(sizes)),
        mask_roi_pool=MultiScaleRoIAlign(
            ["0", "1", "2", "3"], output_size=mask_resolution // 2, sampling_ratio=2
        ),
        box_detections_per_img=detections_per_img,
        box_score_thresh=box_score_threshold,
        **detector_options,
    )
    if image_scale is not None:
        if not image_scale > 0:
            raise ValueError(f"image_scale must be a positive number, got {image_scale!r}")
        t = model.transform
        model.transform = FixedScaleTransform(float(image_scale), t.image_mean, t.image_std)
    if len(ratios) != 3:  # the RPN head predicts one score per anchor shape at each position
        from torchvision.models.detection.rpn import RPNHead

        model.rpn.head = RPNHead(256, len(ratios) * max(len(s) for s in sizes))
    model.reinitialized_ = [] if weights is None else _load_weights(model, weights)
    return model


def _check_options(
    num_classes, in_channels, backbone, mask_resolution, anchor_sizes, aspect_ratios
) -> tuple[tuple, tuple]:
    """The builder's checks; returns the anchor sizes per level and the aspect ratios."""
    if in_channels != 3:
        raise ValueError(
            f"mask_rcnn takes RGB images (in_channels=3), got in_channels={in_channels}"
        )
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    if mask_resolution not in (28, 56):
        raise ValueError(f"mask_resolution must be 28 or 56, got {mask_resolution!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes counts the background: one kind of object is 2, got {num_classes!r}"
        )
    sizes = tuple(tuple(s) if isinstance(s, (tuple, list)) else (int(s),) for s in anchor_sizes)
    if len(sizes) != 5:
        raise ValueError(
            f"anchor_sizes needs one entry per FPN level (5, strides 4..64), got {len(sizes)}"
        )
    ratios = tuple(float(r) for r in aspect_ratios)
    if not ratios or any(r <= 0 for r in ratios):
        raise ValueError(f"aspect_ratios must be positive numbers, got {aspect_ratios!r}")

    return sizes, ratios


def _trunk(backbone: str, has_weights: bool, weights_backbone, trainable_backbone_layers):
    """The ResNet (ImageNet weights loaded if given; batch norm frozen with any weights) and how
    many of its stages learn."""
    from torchvision.models import resnet
    from torchvision.ops import misc as misc_nn_ops

    pretrained = has_weights or weights_backbone is not None
    layers = trainable_backbone_layers
    if layers is None:
        layers = 3 if pretrained else 5
    if not 0 <= layers <= 5:
        raise ValueError(f"trainable_backbone_layers must be in 0..5, got {layers}")
    norm = misc_nn_ops.FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    trunk = getattr(resnet, backbone)(weights=None, norm_layer=norm)
    if weights_backbone is not None:
        state = _state_dict(weights_backbone, "weights_backbone")
        missing = load_matching(trunk, state)
        if len(missing) == len(trunk.state_dict()):
            raise ValueError(f"weights_backbone {weights_backbone} holds no {backbone} layer")
    return trunk, layers


def _load_weights(model: nn.Module, weights) -> list[str]:
    """Load ``weights`` where names and shapes fit; returns the names re-initialised."""
    state = _state_dict(weights, "weights")
    reset = load_matching(model, state)
    if len(reset) == len(model.state_dict()):
        raise ValueError(f"weights {weights} hold no layer of this Mask R-CNN")
    if reset:
        shown = ", ".join(reset[:6]) + (" ..." if len(reset) > 6 else "")
        warnings.warn(
            f"mask_rcnn: {len(reset)} tensors re-initialised (shape or name differs from "
            f"the weights, e.g. for another number of classes): {shown}",
            stacklevel=3,
        )
    return reset


class FixedScaleTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform (normalise, batch, map outputs back to the input) with
    every image resized by a fixed ``scale`` rather than to a minimum side."""

    def __init__(self, scale: float, image_mean, image_std) -> None:
        super().__init__(1, 1, image_mean, image_std)
        self.scale = scale

    def resize(self, image, target=None):
        """Resize by the fixed factor (boxes and masks alike) instead of to a size."""
        h, w = image.shape[-2:]
        if self.scale != 1.0:  # a scale factor, not Python-int sizes: traces (ONNX) for any size
            image = nn.functional.interpolate(
                image[None],
                scale_factor=self.scale,
                mode="bilinear",
                recompute_scale_factor=True,
                align_corners=False,
            )[0]
        if target is None:
            return image, target
        target["boxes"] = resize_boxes(target["boxes"], (h, w), image.shape[-2:])
        if "masks" in target and self.scale != 1.0 and len(target["masks"]):
            target["masks"] = nn.functional.interpolate(
                target["masks"][:, None].float(), size=image.shape[-2:]
            )[:, 0].byte()
        return image, target

    def __repr__(self) -> str:
        return f"FixedScaleTransform(scale={self.scale})"


def _state_dict(source, name: str) -> dict:
    """A state dict from a local file (a plain state dict or a seglab checkpoint) or from a
    torchvision weights enum name whose file is already in the torch hub cache."""
    path = Path(str(source))
    if path.suffix in (".pth", ".pt", ".bin") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"{name} file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # a seglab checkpoint
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict")
        return state
    from torchvision.models import get_weight

    try:
        enum = get_weight(str(source))
    except (ValueError, KeyError, AttributeError):
        raise ValueError(
            f"{name}={source!r} is neither a file nor a torchvision weights name such as "
            "'ResNet50_Weights.IMAGENET1K_V1'"
        ) from None
    try:
        return enum.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:
        raise ValueError(
            f"{name}={source!r}: the weights are not in the torch hub cache and cannot be "
            f"downloaded here ({type(exc).__name__}); download {enum.url} elsewhere and pass "
            "the local file"
        ) from None


def is_instance_model(model: nn.Module) -> bool:
    """Whether ``model`` is a detection model with torchvision's interface (lists in, dicts out)."""
    return hasattr(model, "roi_heads") and hasattr(model, "rpn")
