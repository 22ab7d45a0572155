"""seglab: image segmentation from clustering to fully convolutional networks.

Submodules: :mod:`seglab.features` (per-pixel features), :mod:`seglab.cluster` (k-means,
mean-shift, regions), :mod:`seglab.nn` (upsampling layers), :mod:`seglab.models` (FCN, DeconvNet,
SegNet, U-Net, FC-DenseNet; the sliding-window baseline in :mod:`seglab.models.sliding`), :mod:`seglab.data` (datasets, samples), :mod:`seglab.losses`,
:mod:`seglab.metrics`, :mod:`seglab.engine` (train, evaluate, predict), :mod:`seglab.inference`
(tiled prediction at any size, test-time augmentation, ONNX export), :mod:`seglab.viz`
(pictures), :mod:`seglab.io` (files); the ``seglab`` command line lives in :mod:`seglab.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seglab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
