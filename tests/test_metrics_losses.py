import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, jaccard_score

from seglab.losses import (
    BinaryCEDiceLoss,
    CEDiceLoss,
    CrossEntropyLoss,
    DiceLoss,
    median_frequency_weights,
)
from seglab.metrics import ConfusionMatrix


def test_confusion_matrix_matches_sklearn():
    r = np.random.default_rng(0)
    t = r.integers(0, 4, (3, 20, 30))
    p = np.where(r.random(t.shape) < 0.7, t, r.integers(0, 4, t.shape))
    t[0, :5] = 255
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(t[:2], p[:2])
    cm.update(torch.from_numpy(t[2:]), torch.from_numpy(p[2:]))  # numpy and torch batches mix
    keep = t != 255
    ref = confusion_matrix(t[keep], p[keep], labels=range(4))
    np.testing.assert_array_equal(cm.matrix, ref)
    m = cm.compute()
    np.testing.assert_allclose(m["iou"], jaccard_score(t[keep], p[keep], average=None))
    assert m["mean_iou"] == pytest.approx(jaccard_score(t[keep], p[keep], average="macro"))
    assert m["pixel_accuracy"] == pytest.approx((t[keep] == p[keep]).mean())
    tk = np.bincount(t[keep], minlength=4)
    assert m["fw_iou"] == pytest.approx((tk * np.array(m["iou"])).sum() / tk.sum())
    assert m["mean_accuracy"] == pytest.approx(np.mean(np.diag(ref) / tk))


def test_perfect_prediction_scores_one_and_absent_class_is_excluded():
    t = np.array([[0, 0, 1], [1, 2, 2]])
    cm = ConfusionMatrix(4)  # class 3 is in neither target nor prediction
    cm.update(t, t)
    m = cm.compute()
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou"):
        assert m[key] == 1.0
    assert np.isnan(m["iou"][3]) and m["iou"][:3] == [1.0, 1.0, 1.0]


def test_hand_worked_example():
    # truth 0 0 1 1, prediction 0 1 1 1: IoU0 = 1/2, IoU1 = 2/3
    cm = ConfusionMatrix(2, ignore_index=None)
    cm.update(truth=[0, 0, 1, 1], pred=[0, 1, 1, 1])
    m = cm.compute()
    assert m["iou"] == pytest.approx([0.5, 2 / 3])
    assert m["pixel_accuracy"] == 0.75 and m["mean_accuracy"] == pytest.approx(0.75)
    assert m["fw_iou"] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


@pytest.mark.parametrize(
    "pred, target, match",
    [
        ([0, 1], [0, 7], "truth value 7"),
        ([0, 5], [0, 1], "prediction value 5"),
        ([0, 1, 1], [0, 1], "shape"),
        ([0.5, 1.0], [0, 1], "integer"),
    ],
)
def test_confusion_matrix_rejects_bad_labels(pred, target, match):
    with pytest.raises(ValueError, match=match):
        ConfusionMatrix(3).update(np.asarray(target), np.asarray(pred))


def test_cross_entropy_matches_torch_and_ignores():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 6))
    target[0, 0] = 255
    w = torch.tensor([0.5, 1.0, 2.0])
    loss = CrossEntropyLoss(w)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, weight=w, ignore_index=255))
    loss.backward()
    assert logits.grad[0, :, 0].abs().sum() == 0  # ignored pixels get no gradient


def test_dice_is_zero_for_a_perfect_prediction_and_differentiable():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert DiceLoss(smooth=0.0)(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss = CEDiceLoss()(logits, target)
    loss.backward()
    assert loss.item() > 1.0 and logits.grad.abs().sum() > 0


def test_binary_loss_and_median_frequency_weights():
    t = torch.tensor([[[0, 1], [1, 255]]])
    logits = torch.tensor([[[-20.0, 20.0], [20.0, 0.0]]])
    assert BinaryCEDiceLoss()(logits, t).item() == pytest.approx(0.0, abs=1e-6)
    w = median_frequency_weights([100, 10, 0, 1])
    assert w[2] == 0 and w[1] == pytest.approx(1.0) and w[3] > w[1] > w[0]
    with pytest.raises(ValueError, match="match logits"):
        CrossEntropyLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
