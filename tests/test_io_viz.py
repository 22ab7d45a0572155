import numpy as np
import pytest
from PIL import Image

from seglab import io, viz
from seglab.data import nuclei, sample_image


def test_labels_png_roundtrip_is_16_bit(tmp_path):
    labels = np.arange(12).reshape(3, 4) * 5000
    io.write_labels(tmp_path / "l.png", labels)
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode.startswith("I")
    np.testing.assert_array_equal(io.read_labels(tmp_path / "l.png"), labels)
    assert [p.name for p in tmp_path.iterdir()] == ["l.png"]  # no temporary file left


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.bin"
    io.atomic_write_bytes(target, b"old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        io.atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_read_image_modes(tmp_path):
    rgb = sample_image("chelsea")
    assert rgb.shape == (300, 451, 3) and rgb.dtype == np.uint8
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert io.read_image(tmp_path / "p.png").shape == (300, 451, 3)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "a.png")
    assert io.read_image(tmp_path / "a.png").shape == (300, 451, 3)
    Image.fromarray(rgb).convert("LA").save(tmp_path / "la.png")
    assert io.read_image(tmp_path / "la.png").shape == (300, 451)
    img, mask = nuclei()
    assert img.dtype == np.uint16 and img.shape == (512, 512) and img.max() == 235
    assert len(np.unique(mask)) == 126


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image"):
        io.read_image(tmp_path / "text.png")
    data = tmp_path / "ok.png"
    Image.fromarray(sample_image("coffee")).save(data)
    (tmp_path / "cut.png").write_bytes(data.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated"):
        io.read_image(tmp_path / "cut.png")
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="mode"):
        io.read_image(tmp_path / "f.tif")
    with pytest.raises(ValueError, match="not a file"):
        io.read_image(tmp_path)


def test_voc_palette():
    pal = viz.voc_palette()
    assert pal[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert pal[255].tolist() == [224, 224, 192]
    np.testing.assert_array_equal(viz.colorize(np.array([[1, 257]])), pal[[[1, 1]]])


def test_overlay_endpoints():
    img = sample_image("chelsea")[:20, :30]
    labels = np.arange(600).reshape(20, 30) % 3
    np.testing.assert_array_equal(viz.overlay(img, labels, 0.0), img)
    np.testing.assert_array_equal(viz.overlay(img, labels, 1.0), viz.colorize(labels))
    with pytest.raises(ValueError, match="match"):
        viz.overlay(img, labels[:5], 0.5)


def test_mean_color_and_boundaries():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = (10, 20, 30)
    img[:, 2:] = (200, 100, 0)
    img[0, 0] = (30, 20, 30)
    labels = np.zeros((4, 4), int)
    labels[:, 2:] = 1
    mc = viz.mean_color(img, labels)
    assert mc[3, 3].tolist() == [200, 100, 0]
    assert mc[3, 0].tolist() == [round((30 + 7 * 10) / 8), 20, 30]
    edge = viz.boundaries(labels)
    assert edge[:, 1].all() and not edge[:, 0].any() and not edge[:, 2:].any()
    marked = viz.mark_boundaries(img, labels, color=(1, 2, 3))
    assert marked[0, 1].tolist() == [1, 2, 3]


def test_k_sweep_figure(tmp_path):
    img = sample_image("chelsea")[::4, ::4]
    labels = np.zeros(img.shape[:2], int)
    fig = viz.k_sweep_figure(img, [{"k": 1, "labels": labels, "inertia": 12.5}])
    io.save_figure(tmp_path / "f.png", fig)
    picture = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    assert picture.shape[1] > 100 and picture.std() > 5  # an image was drawn, not a blank page
    assert "12.5" in "".join(t.get_text() for ax in fig.axes for t in [*ax.texts, ax.title])


def test_mask_box_is_torchvisions_with_exclusive_ends():
    import torch
    from torchvision.ops import masks_to_boxes

    from seglab.image import mask_box

    rng = np.random.default_rng(5)
    for _ in range(20):
        mask = np.zeros((17, 23), bool)
        y, x = rng.integers(0, 17), rng.integers(0, 23)
        mask[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = True
        ref = masks_to_boxes(torch.from_numpy(mask)[None])[0].tolist()
        assert mask_box(mask) == (ref[0], ref[1], ref[2] + 1, ref[3] + 1)
    assert mask_box(np.zeros((4, 4), bool)) is None
