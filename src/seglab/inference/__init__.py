"""Inference at any size: tiled prediction with bounded memory, test-time augmentation, ONNX.

=============  ==============================================================================
module         what it holds
=============  ==============================================================================
``sources``    images as arrays, tensors, or files read by region (uncompressed TIFF rows)
``runners``    a module or an ONNX model as one function: batch -> class probabilities
``tta``        test-time augmentation: flips and scales averaged in probability space
``tiling``     :func:`predict_tiled`: overlapping tiles blended without seams, bounded memory
``onnx``       :func:`export_onnx`, checked against PyTorch by onnxruntime
=============  ==============================================================================

See :mod:`seglab.inference.tiling` for how tiles are blended and how memory is bounded.
"""

from .onnx import export_onnx
from .runners import load_onnx
from .sources import TiffRows, open_image
from .tiling import estimate_memory, predict_tiled
from .tta import parse_tta

__all__ = [
    "TiffRows",
    "estimate_memory",
    "export_onnx",
    "load_onnx",
    "open_image",
    "parse_tta",
    "predict_tiled",
]
