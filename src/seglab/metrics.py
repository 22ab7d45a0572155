"""Segmentation metrics. One definition each, used by tests, benchmarks and (later) training."""

from __future__ import annotations

import numpy as np
import torch

from ._checks import check_positive_int


def _as_label_tensor(x, name: str) -> torch.Tensor:
    """Integer labels as an int64 tensor (numpy arrays of any integer dtype, or tensors)."""
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex():
            raise ValueError(f"{name} must hold integer class labels, got {x.dtype}")
        return x.long()
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
        raise ValueError(f"{name} must hold integer class labels, got {x.dtype}")
    return torch.from_numpy(x.astype(np.int64))


def binary_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """IoU, Dice, precision and recall of a boolean prediction against a boolean target (the
    foreground class of :class:`ConfusionMatrix`).

    Empty prediction and empty target together count as a perfect score (1.0) rather than 0/0.
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    cm = ConfusionMatrix(2, ignore_index=None)
    cm.update(pred, target)
    m = cm.compute()
    pick = {"iou": "iou", "dice": "dice", "precision": "precision", "recall": "accuracy"}
    return {k: 1.0 if np.isnan(m[v][1]) else float(m[v][1]) for k, v in pick.items()}


class ConfusionMatrix:
    """Accumulates an (num_classes x num_classes) confusion matrix over batches and gives the FCN
    paper's four metrics (Long et al. 2015, section 4) and per-class scores.

    ``n[i, j]`` counts pixels of true class i predicted as j. Pixels whose target is
    ``ignore_index`` count nowhere. Updates accept numpy arrays or torch tensors of integer labels
    with equal shapes; tensors stay on their device (the matrix lives where the first update was).

    ``compute()`` returns, with t_i = sum_j n_ij and IoU_i = n_ii / (t_i + sum_j n_ji - n_ii):

    * ``pixel_accuracy`` = sum_i n_ii / sum_i t_i
    * ``mean_accuracy`` = mean over classes present in the target of n_ii / t_i
    * ``mean_iou`` = mean of IoU_i over classes present in the target or the prediction
    * ``fw_iou`` = sum_i t_i IoU_i / sum_i t_i
    * ``iou``, ``accuracy`` (recall), ``precision``, ``dice``: one value per class, NaN where the
      class is absent from both target and prediction (it is left out of the means, not counted
      as 0 or 1), and ``confusion``, the matrix itself.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        check_positive_int(num_classes, "num_classes")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is one of the {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self._matrix = None

    def update(self, pred, target) -> None:
        """Add a batch: ``pred`` and ``target`` integer labels of the same shape."""
        pred, target = _as_label_tensor(pred, "prediction"), _as_label_tensor(target, "target")
        target = target.to(pred.device)
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}"
            )
        k = self.num_classes
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        bad = (target < 0) | (target >= k)
        if bad.any():
            raise ValueError(
                f"target value {int(target[bad][0])} is neither a class (0..{k - 1}) nor the "
                f"ignore index {self.ignore_index}"
            )
        bad = (pred < 0) | (pred >= k)
        if bad.any():
            raise ValueError(f"prediction value {int(pred[bad][0])} is not a class (0..{k - 1})")
        counts = torch.bincount(target.reshape(-1) * k + pred.reshape(-1), minlength=k * k).reshape(
            k, k
        )
        self._matrix = (
            counts if self._matrix is None else self._matrix + counts.to(self._matrix.device)
        )

    @property
    def matrix(self) -> np.ndarray:
        """The confusion matrix as int64 numpy (rows: truth, columns: prediction)."""
        if self._matrix is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self._matrix.cpu().numpy().astype(np.int64)

    def compute(self) -> dict:
        n = self.matrix.astype(np.float64)
        tp = np.diag(n)
        t = n.sum(axis=1)  # pixels of each true class
        p = n.sum(axis=0)  # pixels predicted as each class
        union = t + p - tp
        total = t.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(t > 0, tp / t, np.nan)
            prec = np.where(p > 0, tp / p, np.where(union > 0, 0.0, np.nan))
            dice = np.where(union > 0, 2 * tp / (t + p), np.nan)
        present = union > 0
        return {
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "mean_accuracy": float(np.nanmean(acc)) if np.any(t > 0) else float("nan"),
            "mean_iou": float(np.nanmean(iou)) if present.any() else float("nan"),
            "fw_iou": float((t[present] * iou[present]).sum() / total) if total else float("nan"),
            "iou": iou.tolist(),
            "accuracy": acc.tolist(),
            "precision": prec.tolist(),
            "dice": dice.tolist(),
            "confusion": self.matrix.tolist(),
        }


# ------------------------------------------------------------------------ instance segmentation


def instance_f1(pred_masks, gt_masks, iou_threshold: float = 0.5) -> dict[str, float]:
    """Instance matching at an IoU threshold (the nuclei-challenge count): each ground-truth
    instance matches at most one predicted instance with IoU > ``iou_threshold`` (greedily, best
    IoU first). Returns tp, fp, fn, precision, recall and ``f1 = 2 tp / (2 tp + fp + fn)``.
    Masks are (N, H, W) boolean arrays; sum the counts of several images for a pooled F1."""
    p, g = np.asarray(pred_masks, dtype=bool), np.asarray(gt_masks, dtype=bool)
    p = p.reshape(p.shape[0], int(np.prod(p.shape[1:])))  # (N, pixels), N may be 0
    g = g.reshape(g.shape[0], int(np.prod(g.shape[1:])))
    tp = 0
    if len(p) and len(g):
        inter = p.astype(np.float32) @ g.T.astype(np.float32)
        union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        used_p, used_g = set(), set()
        for i, j in zip(*np.unravel_index(np.argsort(-iou, axis=None), iou.shape), strict=True):
            if iou[i, j] <= iou_threshold:
                break
            if i not in used_p and j not in used_g:
                used_p.add(i)
                used_g.add(j)
        tp = len(used_p)
    return _f1_counts(tp, len(p) - tp, len(g) - tp)


def _f1_counts(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
    }


def coco_metrics(targets: list[dict], predictions: list[dict], mask_threshold: float = 0.5) -> dict:
    """COCO box and mask AP (IoU 0.50:0.95), AP50 and AP75, computed by pycocotools' COCOeval.

    ``targets`` are detection targets (``masks`` (N, H, W), ``labels``; ``boxes`` optional) and
    ``predictions`` the model's outputs (``masks`` (N, 1, H, W) probabilities or (N, H, W),
    ``labels``, ``scores``, ``boxes`` xyxy), one of each per image, in the same order.
    """
    import contextlib
    import io

    try:
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise ValueError("COCO AP needs pycocotools: pip install 'seglab[coco]'") from None
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")

    def rle(mask: np.ndarray) -> dict:
        r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        r["counts"] = r["counts"].decode("ascii")
        return r

    images, anns, results, cats = [], [], [], set()
    for i, (t, p) in enumerate(zip(targets, predictions, strict=True)):
        gm = _np(t["masks"]).astype(bool)
        h, w = gm.shape[-2:]
        images.append({"id": i, "height": int(h), "width": int(w)})
        for m, label in zip(gm, _np(t["labels"]), strict=True):
            r = rle(m)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(label),
                    "segmentation": r,
                    "area": float(m.sum()),
                    "bbox": [float(v) for v in mask_utils.toBbox(r)],
                    "iscrowd": 0,
                }
            )
            cats.add(int(label))
        pm = _np(p["masks"])
        pm = (pm[:, 0] if pm.ndim == 4 else pm) > mask_threshold
        for m, label, score, box in zip(
            pm, _np(p["labels"]), _np(p["scores"]), _np(p["boxes"]), strict=True
        ):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": i,
                    "category_id": int(label),
                    "score": float(score),
                    "segmentation": rle(m),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
            cats.add(int(label))
    out = {}
    keys = ("ap", "ap50", "ap75")
    if not results or not anns:
        return {f"{kind}_{k}": 0.0 for kind in ("box", "mask") for k in keys}
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": c, "name": str(c)} for c in sorted(cats)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        for kind, iou_type in (("box", "bbox"), ("mask", "segm")):
            ev = COCOeval(gt, dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            for k, v in zip(keys, ev.stats[:3], strict=True):
                out[f"{kind}_{k}"] = max(0.0, float(v))  # -1 (no ground truth) reads as 0
    return out


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ------------------------------------------------------------------------ partitions (clustering)


def _paired(truth, pred, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The labels of the pixels that count: same shape required, ignore pixels dropped."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth is {truth.shape} but the prediction is {pred.shape}")
    keep = np.ones(truth.shape, bool) if ignore_index is None else truth != ignore_index
    return truth[keep].astype(np.int64).ravel(), pred[keep].astype(np.int64).ravel()


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of each (label of a, label of b) pair that occurs, as a flat array."""
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    nb = int(ib.max()) + 1 if ib.size else 1
    return np.bincount(ia.ravel() * nb + ib.ravel()), ia.ravel(), ib.ravel()


def adjusted_rand_index(truth, pred, ignore_index: int | None = 255) -> float:
    """Adjusted Rand index of two labellings (Hubert & Arabie 1985): 1 for the same partition
    (label names do not matter), about 0 for a random one. Pixels whose truth is ``ignore_index``
    are left out. Equal to scikit-learn's ``adjusted_rand_score`` on the remaining pixels."""
    a, b = _paired(truth, pred, ignore_index)
    n = a.size
    if n < 2:
        return 1.0
    pairs, ia, ib = _contingency(a, b)

    def comb2(x):
        x = np.asarray(x, np.float64)
        return float((x * (x - 1) / 2).sum())

    index = comb2(pairs)
    sa, sb = comb2(np.bincount(ia)), comb2(np.bincount(ib))
    expected = sa * sb / (n * (n - 1) / 2)
    top = (sa + sb) / 2
    if top == expected:  # both partitions trivial (one cluster each, or all singletons)
        return 1.0
    return (index - expected) / (top - expected)


def variation_of_information(truth, pred, ignore_index: int | None = 255) -> float:
    """Variation of information H(T|P) + H(P|T) in bits (Meila 2007; scikit-image's units): 0 for
    the same partition, larger is worse. Pixels whose truth is ``ignore_index`` are left out."""
    a, b = _paired(truth, pred, ignore_index)
    if a.size == 0:
        return 0.0
    pairs, ia, ib = _contingency(a, b)
    n = float(a.size)

    def entropy(counts):
        p = counts[counts > 0] / n
        return float(-(p * np.log2(p)).sum())

    joint = entropy(pairs)
    return 2 * joint - entropy(np.bincount(ia)) - entropy(np.bincount(ib))


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label (thin, one-sided boundaries)."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def boundary_f1(truth, pred, tolerance: float = 2.0, ignore_index: int | None = 255) -> dict:
    """Boundary precision, recall and F-measure with a distance tolerance, as the Berkeley
    segmentation benchmark scores boundaries: a predicted boundary pixel is correct if a true
    boundary lies within ``tolerance`` pixels, a true one is found if a predicted one does.
    Boundaries next to ignore pixels count nowhere. Empty boundaries on both sides score 1."""
    from scipy import ndimage

    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth is {truth.shape} but the prediction is {pred.shape}")
    valid = np.ones(truth.shape, bool)
    if ignore_index is not None:
        valid = ~ndimage.binary_dilation(truth == ignore_index, iterations=1)
    bt = boundaries(np.where(truth == ignore_index, -1, truth)) & valid
    bp = boundaries(pred) & valid
    if not bt.any() and not bp.any():
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    if not bt.any() or not bp.any():
        return {"precision": float(not bp.any()), "recall": float(not bt.any()), "f1": 0.0}
    near_truth = ndimage.distance_transform_edt(~bt) <= tolerance
    near_pred = ndimage.distance_transform_edt(~bp) <= tolerance
    precision = float((bp & near_truth).sum() / bp.sum())
    recall = float((bt & near_pred).sum() / bt.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def partition_scores(truth, pred, ignore_index: int | None = 255, tolerance: float = 2.0) -> dict:
    """What any segmentation can be scored by, classes or not: adjusted Rand index, variation of
    information and the boundary F-measure (``boundary_f1``) against the truth."""
    return {
        "adjusted_rand": adjusted_rand_index(truth, pred, ignore_index),
        "variation_of_information": variation_of_information(truth, pred, ignore_index),
        "boundary_f1": boundary_f1(truth, pred, tolerance, ignore_index)["f1"],
    }
