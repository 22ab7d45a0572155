"""Segmentation as clustering: pixels are points in feature space, segments are clusters."""

from ._estimator import NotFittedError
from .kmeans import KMeans, KMeansSegmenter, kmeans_plusplus
from .meanshift import MeanShift, estimate_bandwidth
from .meanshift_image import MeanShiftSegmenter
from .regions import connected_regions, label_regions, merge_small_regions

__all__ = [
    "KMeans",
    "KMeansSegmenter",
    "MeanShift",
    "MeanShiftSegmenter",
    "NotFittedError",
    "connected_regions",
    "estimate_bandwidth",
    "kmeans_plusplus",
    "label_regions",
    "merge_small_regions",
]
