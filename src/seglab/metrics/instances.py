"""Instance scores: matched objects at an IoU threshold, and COCO's average precision."""

from __future__ import annotations

import numpy as np
import torch


def instance_f1(truth_masks, pred_masks, iou_threshold: float = 0.5) -> dict[str, float]:
    """Instance matching at an IoU threshold (the nuclei-challenge count): each ground-truth
    instance matches at most one predicted instance with IoU > ``iou_threshold`` (greedily, best
    IoU first). Returns tp, fp, fn, precision, recall and ``f1 = 2 tp / (2 tp + fp + fn)``.
    Masks are (N, H, W) boolean arrays; sum the counts of several images for a pooled F1."""
    g, p = np.asarray(truth_masks, dtype=bool), np.asarray(pred_masks, dtype=bool)
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
    return f1_counts(tp, len(p) - tp, len(g) - tp)


def f1_counts(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from matched counts (pooled over images by summing them); with
    nothing to find and nothing found, all three are 1."""
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
