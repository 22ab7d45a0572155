"""Layers for fully convolutional networks: the in-network upsampling of the lecture."""

from .upsampling import (
    BedOfNailsUnpool,
    MaxPool2dWithSwitches,
    MaxUnpool2d,
    NearestUnpool,
    TransposeConv2d,
    bilinear_kernel,
)

__all__ = [
    "BedOfNailsUnpool",
    "MaxPool2dWithSwitches",
    "MaxUnpool2d",
    "NearestUnpool",
    "TransposeConv2d",
    "bilinear_kernel",
]
