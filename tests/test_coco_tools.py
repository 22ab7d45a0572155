"""COCO JSON as annotation tools write it: labelme, Roboflow, CVAT and Label Studio exports."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from seglab.data import CocoInstances
from seglab.instances import Instance, to_coco_results

pytest.importorskip("pycocotools")

SQUARE = [4.0, 4.0, 14.0, 4.0, 14.0, 14.0, 4.0, 14.0]  # a 10 x 10 square
TRIANGLE = [20.0, 20.0, 30.0, 20.0, 20.0, 30.0]


def _export(tmp_path, categories, annotations, file_name="img.png", extra_image=None):
    """An image folder and a COCO JSON in the shape a tool writes."""
    root = tmp_path / "export"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "images" / "img.png")
    image = {"id": 1, "file_name": file_name, "width": 32, "height": 32, **(extra_image or {})}
    data = {"images": [image], "annotations": annotations, "categories": categories}
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return root, path


def _ann(aid, cat, segm, **kw):
    return {"id": aid, "image_id": 1, "category_id": cat, "segmentation": segm, "iscrowd": 0, **kw}


def test_labelme_background_category_zero_unused(tmp_path):
    cats = [{"id": 0, "name": "_background_"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    root, path = _export(
        tmp_path,
        cats,
        [_ann(0, 1, [SQUARE]), _ann(1, 2, [TRIANGLE])],
        file_name="JPEGImages/img.png",  # labelme2coco writes its own folder into file_name
    )
    ds = CocoInstances(root / "images", path)
    _, target = ds[0]
    assert target["labels"].tolist() == [1, 2]  # the JSON's category ids
    assert ds.class_map.names == ("background", "cat", "dog")


def test_roboflow_dataset_name_as_category_zero(tmp_path):
    cats = [
        {"id": 0, "name": "cells-xyz", "supercategory": "none"},
        {"id": 1, "name": "cell", "supercategory": "cells-xyz"},
    ]
    root, path = _export(tmp_path, cats, [_ann(0, 1, [SQUARE], bbox=[4, 4, 10, 10], area=100)])
    ds = CocoInstances(root / "images", path)
    _, target = ds[0]
    assert target["labels"].tolist() == [1] and target["masks"].sum() > 80


def test_cvat_sparse_ids_and_uncompressed_rle(tmp_path):
    mask = np.zeros((32, 32), np.uint8)
    mask[10:20, 5:25] = 1
    flat = mask.flatten(order="F")  # COCO's uncompressed RLE runs down the columns
    counts, value, run = [], 0, 0
    for v in flat:
        if v != value:
            counts.append(run)
            value, run = v, 0
        run += 1
    counts.append(run)
    rle = {"size": [32, 32], "counts": [int(c) for c in counts]}
    cats = [{"id": 1, "name": "car"}, {"id": 3, "name": "person"}]  # sparse ids
    anns = [_ann(1, 3, [SQUARE], attributes={"occluded": False}), _ann(2, 1, rle, iscrowd=1)]
    root, path = _export(tmp_path, cats, anns)
    ds = CocoInstances(root / "images", path, include_crowd=True)
    _, target = ds[0]
    assert target["labels"].tolist() == [3, 1]
    assert int(target["masks"][1].sum()) == 200
    assert ds.class_map.names == ("background", "car", "unused_2", "person")
    mapped = CocoInstances(root / "images", path, include_crowd=True, contiguous=True)
    assert mapped[0][1]["labels"].tolist() == [2, 1]
    assert mapped.class_map.names == ("background", "car", "person")
    assert [mapped.class_map.dataset_id(i) for i in (1, 2)] == [1, 3]


def test_label_studio_ids_from_zero_are_mapped_with_a_warning(tmp_path):
    cats = [{"id": 0, "name": "nucleus"}, {"id": 1, "name": "debris"}]
    _, path = _export(
        tmp_path, cats, [_ann(0, 0, [SQUARE]), _ann(1, 1, [TRIANGLE])], file_name="images/img.png"
    )
    with pytest.warns(UserWarning, match="category id 0 is used"):
        ds = CocoInstances(tmp_path / "export", path)
    _, target = ds[0]
    assert target["labels"].tolist() == [1, 2]
    assert ds.class_map.ids == (0, 0, 1)
    with pytest.raises(ValueError, match="contiguous=True"):
        CocoInstances(tmp_path / "export", path, contiguous=False)
    # outputs speak the JSON's ids again
    mask = np.zeros((32, 32), bool)
    mask[2:6, 2:6] = True
    found = [Instance(label=2, score=0.9, box=(2, 2, 6, 6), mask=mask[2:6, 2:6])]
    (result,) = to_coco_results(found, (32, 32), 1, ds.class_map.ids)
    assert result["category_id"] == 1


def test_default_labels_are_category_ids_unless_mapping_is_asked(tmp_path):
    cats = [{"id": 5, "name": "a"}, {"id": 9, "name": "b"}]
    root, path = _export(tmp_path, cats, [_ann(0, 9, [SQUARE]), _ann(1, 5, [TRIANGLE])])
    assert CocoInstances(root / "images", path)[0][1]["labels"].tolist() == [9, 5]
    assert CocoInstances(root / "images", path, contiguous=True)[0][1]["labels"].tolist() == [2, 1]


def test_odd_polygon_is_named_and_skippable(tmp_path):
    cats = [{"id": 1, "name": "cell"}]
    bad = _ann(17, 1, [[1.0, 2.0, 3.0, 4.0, 5.0]])
    root, path = _export(tmp_path, cats, [_ann(3, 1, [SQUARE]), bad, _ann(18, 1, "nonsense")])
    with pytest.raises(ValueError, match="annotation 17: a polygon has an odd number"):
        CocoInstances(root / "images", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CocoInstances(root / "images", path, bad="skip")
    assert "annotation 17" in str(caught[0].message) and "annotation 18" in str(caught[0].message)
    assert ds[0][1]["labels"].tolist() == [1]
