import numpy as np
import pytest
from scipy import ndimage as ndi

from seglab.cluster import connected_regions


def _reference_regions(labels, structure):
    """Connected components per label with scipy, as a set of pixel-index frozensets."""
    parts = set()
    for v in np.unique(labels):
        comp, n = ndi.label(labels == v, structure=structure)
        for i in range(1, n + 1):
            parts.add(frozenset(np.flatnonzero(comp.ravel() == i)))
    return parts


@pytest.mark.parametrize("connectivity, structure", [(1, None), (2, np.ones((3, 3)))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scipy_label(seed, connectivity, structure):
    labels = np.random.default_rng(seed).integers(0, 3, size=(23, 31))
    regions = connected_regions(labels, connectivity=connectivity)
    ours = {frozenset(np.flatnonzero(regions.ravel() == r)) for r in np.unique(regions)}
    assert ours == _reference_regions(labels, structure)
    assert regions.min() == 0 and regions.max() == len(ours) - 1


def test_regions_are_numbered_in_raster_order():
    labels = np.array([[5, 5, 2], [2, 2, 2], [7, 7, 7]])
    np.testing.assert_array_equal(connected_regions(labels), [[0, 0, 1], [1, 1, 1], [2, 2, 2]])


def test_small_regions_merge_into_longest_border_neighbour():
    labels = np.zeros((6, 6), int)
    labels[:, 3:] = 1
    labels[2, 2] = 2  # a speck touching region 0 on three sides and region 1 on one
    out = connected_regions(labels, min_region_size=2)
    assert out[2, 2] == out[0, 0]
    assert len(np.unique(out)) == 2


@pytest.mark.parametrize("min_size", [2, 5, 20, 60])
def test_no_region_below_min_size(min_size):
    labels = np.random.default_rng(min_size).integers(0, 4, size=(30, 40))
    out = connected_regions(labels, min_region_size=min_size)
    sizes = np.bincount(out.ravel())
    assert sizes.min() >= min_size
    # merged regions are connected
    for r in range(len(sizes)):
        _, n = ndi.label(out == r)
        assert n == 1


def test_single_region_survives_any_min_size():
    out = connected_regions(np.zeros((3, 3), int), min_region_size=100)
    assert np.all(out == 0)


@pytest.mark.parametrize(
    "bad, words",
    [(np.zeros((3,), int), "2-d|\\(H, W\\)"), (np.zeros((3, 3)), "integer"),
     (np.zeros((0, 3), int), "empty")],
)  # fmt: skip
def test_rejects_bad_labels(bad, words):
    with pytest.raises(ValueError, match=words):
        connected_regions(bad)


def test_rejects_negative_min_size():
    with pytest.raises(ValueError, match="min_region_size"):
        connected_regions(np.zeros((3, 3), int), min_region_size=-1)


@pytest.mark.parametrize("connectivity", [1, 2])
@pytest.mark.parametrize("seed", [3, 4])
def test_label_regions_equals_skimage_label(seed, connectivity):
    from skimage.measure import label

    from seglab.cluster import label_regions

    rng = np.random.default_rng(seed)
    for labels in (
        rng.integers(-2, 3, size=(40, 57)),
        rng.integers(0, 2**62, size=(9, 9)) // 2**61,
    ):
        regions, n = label_regions(labels, connectivity)
        ref, n_ref = label(labels - labels.min() + 1, background=0, connectivity=connectivity,
                           return_num=True)  # fmt: skip
        np.testing.assert_array_equal(regions, ref - 1)
        assert n == n_ref


def test_label_regions_keeps_huge_labels_apart():
    from seglab.cluster import label_regions

    big = 2**62
    labels = np.array([[0, big, big + 1]], dtype=np.int64)  # the last two equal in float64
    regions, n = label_regions(labels, connectivity=1)
    assert n == 3
    np.testing.assert_array_equal(regions, [[0, 1, 2]])
