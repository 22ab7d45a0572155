"""Data bundled with seglab: a few example photos and a real, human-labelled microscopy image.

=================  ==========================================================================
name               source and licence
=================  ==========================================================================
``chelsea``        a cat; scikit-image sample data, CC0 (photo: Stefan van der Walt)
``coffee``         a cup of coffee; scikit-image sample data, CC0 (photo: Rachel Michetti)
``rocket``         SpaceX rocket launch; scikit-image sample data, public domain (SpaceX)
``nuclei``         2018 Data Science Bowl (BBBC038) fluorescence image + 125 nucleus instance
                   labels, CC0; as shipped in the stardist 0.9.2 wheel (BSD-3-Clause)
=================  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import read_image

SAMPLES_DIR = Path(__file__).parent / "samples"
SAMPLE_IMAGES = {
    "chelsea": SAMPLES_DIR / "chelsea.jpg",
    "coffee": SAMPLES_DIR / "coffee.jpg",
    "rocket": SAMPLES_DIR / "rocket.jpg",
    "nuclei": SAMPLES_DIR / "nuclei-dsb2018" / "img2d.tif",
}


def sample_path(name: str) -> Path:
    """Path of a bundled sample image (``chelsea``, ``coffee``, ``rocket`` or ``nuclei``)."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_IMAGES)}")
    return SAMPLE_IMAGES[name]


def sample_image(name: str) -> np.ndarray:
    """A bundled sample image as an array (RGB uint8 photos; ``nuclei`` is (512, 512) uint16)."""
    return read_image(sample_path(name))


def nuclei() -> tuple[np.ndarray, np.ndarray]:
    """The DSB2018 nuclei sample: (image (512, 512) uint16, instance labels (512, 512) int64).

    Label 0 is background; the 125 nuclei have non-consecutive ids up to 183. Values of the image
    span 0..235 of the 16-bit range. Known limits: a few very bright (mitotic) and some dim nuclei
    are unlabelled.
    """
    from PIL import Image

    image = sample_image("nuclei")
    with Image.open(SAMPLES_DIR / "nuclei-dsb2018" / "mask2d.tif") as im:
        mask = np.array(im).astype(np.int64)
    return image, mask


from .coco import CocoInstances  # noqa: E402
from .datasets import (  # noqa: E402 - the datasets use nuclei() above
    NUCLEI_CLASSES,
    NUCLEI_SPLITS,
    ClassMap,
    FolderDataset,
    JointTransform,
    NucleiTiles,
    PatchDataset,
    SyntheticScenes,
    synthetic_scene,
)
from .instances import (  # noqa: E402
    InstanceFolder,
    NucleiInstances,
    SyntheticInstances,
    instance_collate,
)
from .public import READERS  # noqa: E402, F401 - registers the public benchmarks
from .registry import (  # noqa: E402
    DatasetInfo,
    dataset_info,
    list_datasets,
    make_dataset,
    register_dataset,
)

__all__ = [
    "NUCLEI_CLASSES",
    "NUCLEI_SPLITS",
    "ClassMap",
    "CocoInstances",
    "DatasetInfo",
    "FolderDataset",
    "InstanceFolder",
    "JointTransform",
    "NucleiInstances",
    "NucleiTiles",
    "PatchDataset",
    "SyntheticInstances",
    "SyntheticScenes",
    "dataset_info",
    "instance_collate",
    "list_datasets",
    "make_dataset",
    "nuclei",
    "register_dataset",
    "sample_image",
    "sample_path",
    "synthetic_scene",
]
