"""Inference at any size: tiled prediction with bounded memory, test-time augmentation, ONNX.

:func:`predict_tiled` cuts the image into overlapping tiles, runs them through the model a batch
at a time, and blends the per-tile class probabilities with a window weight, so there are no
seams. It takes a seglab model, a torchvision segmentation model (dict output), any ``nn.Module``
mapping (B, C, h, w) to (B, K, h', w') logits (resized to the tile when h', w' differ), or an ONNX
file / ``onnxruntime.InferenceSession``.

Blending. Near a tile's border the network saw zero padding instead of image, so each tile gives
weight only to its interior: a margin of half the overlap is dropped on every side that has a
neighbouring tile (not on the image's own borders). Inside, ``weighting="gaussian"`` weighs pixels
by a Gaussian centred on the tile (sigma = tile / 8), ``"uniform"`` equally. A model whose
receptive field reaches no further than half the overlap therefore gives exactly the whole-image
result with either weighting; for larger receptive fields the Gaussian fades the tiles into each
other where they disagree.

Memory. Tiles are processed in rows; the blending accumulator covers one row of tiles only, and
rows that no later tile touches are finished (divided, arg-maxed) and written out at once. Peak
memory, beyond the model's own activations for ``batch_size`` tiles, is about::

    output        H * W * 1 byte (labels, uint8; 4 bytes if > 256 classes)
                  or K * H * W * itemsize (probabilities; float32, or float16 with probs_dtype)
  + accumulator   (K + 1) * tile * W * 4 bytes (one row of tiles, float32)
  + batch         batch_size * C * tile^2 * 4 bytes (input) + the same with K channels (output)
  + the image     H * W * C bytes when given as an array; a TIFF path is read tile by tile

The output can itself live on disk: ``out="labels.tif"`` (or ``.npy``) writes into a memory-mapped
file, so an 8000 x 8000 image is labelled in well under 2 GB. ``max_memory`` (bytes, or a string
like ``"2GB"``) checks the estimate above, without the model's activations, before the output
is allocated, and says what to change when it does not fit.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import parse_bytes
from .._constraints import Interval, Options, validate
from .runners import make_runner
from .sources import TIFF_SUFFIXES, ImageSource, to_float_chw
from .tta import parse_tta, with_tta


def axis_tiles(n: int, tile: int, overlap: float, align: int) -> list[tuple[int, int, int]]:
    """(start, length, margin) of the tiles along an axis of length ``n``.

    Starts are multiples of ``align`` (the network's output stride), so every tile sees the
    pooling grid of the whole image; the step is the tile less the overlap, rounded down to a
    multiple of ``align``. The last tile ends at the image's end: it starts at the last aligned
    position that leaves it at least ``tile`` long, so it may be up to ``align - 1`` longer.
    ``margin`` is half the nominal overlap: the part of an inner side each tile gives up.
    """
    if n <= tile:
        return [(0, n, 0)]
    a = align if tile > align else 1
    step = max(a, (tile - round(tile * overlap)) // a * a)
    margin = (tile - step) // 2
    last = (n - tile) // a * a
    starts = list(range(0, last, step))
    return [(p, tile, margin) for p in starts] + [(last, n - last, margin)]


def _axis_weight(start: int, length: int, n: int, margin: int, weighting: str) -> np.ndarray:
    """The 1-D weight of a tile: the window, with ``margin`` pixels dropped on inner sides (the
    image's own borders keep their weight: no other tile covers them)."""
    if weighting == "uniform":
        w = np.ones(length, np.float32)
    else:
        centre, sigma = (length - 1) / 2, length / 8
        w = np.exp(-0.5 * ((np.arange(length) - centre) / sigma) ** 2).astype(np.float32)
    if margin:
        if start > 0:
            w[:margin] = 0
        if start + length < n:
            w[length - margin :] = 0
    return w


def estimate_memory(
    height: int,
    width: int,
    num_classes: int,
    tile: int = 512,
    batch_size: int = 4,
    channels: int = 3,
    output: str = "labels",
    probs_itemsize: int = 4,
    image_in_memory: bool = True,
    output_in_memory: bool = True,
) -> int:
    """Bytes seglab itself holds during :func:`predict_tiled` (the formula in the module
    docstring); the model's activations for ``batch_size`` tiles come on top."""
    t_h, t_w = min(tile, height), min(tile, width)
    if output == "probs":
        out = num_classes * height * width * probs_itemsize
    else:
        out = height * width * (1 if num_classes <= 256 else 4)
    acc = (num_classes + 1) * t_h * width * 4
    batch = batch_size * (channels + num_classes) * t_h * t_w * 4
    image = height * width * channels if image_in_memory else 0
    return (out if output_in_memory else 0) + acc + batch + image


def _open_output(out, shape: tuple[int, ...], dtype) -> tuple[np.ndarray, Path | None, Path | None]:
    """(array to write into, temporary file, final path): memory, a given array, or a memory
    map (.tif/.tiff via tifffile, .npy) written under a temporary name and renamed at the end."""
    if out is None:
        return np.zeros(shape, dtype), None, None
    if isinstance(out, np.ndarray):
        if out.shape != shape:
            raise ValueError(f"out has shape {out.shape}, expected {shape}")
        return out, None, None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        arr = tifffile.memmap(tmp, shape=shape, dtype=dtype, bigtiff=True)
    elif suffix == ".npy":
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    else:
        tmp.unlink()
        raise ValueError(f"out must end in .tif, .tiff or .npy to be memory-mapped, got {path}")
    return arr, tmp, path


def predict_tiled(
    model,
    image,
    tile: int | tuple[int, int] = 512,
    overlap: float = 0.25,
    batch_size: int = 4,
    weighting: str = "gaussian",
    output: str = "labels",
    tta=None,
    preprocess: Callable | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    out=None,
    probs_dtype=np.float32,
    max_memory=None,
    align: int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Segment an image of any size by overlapping tiles (see the module docstring).

    Parameters
    ----------
    model : nn.Module, ONNX path or onnxruntime session
        Maps (B, C, h, w) float tensors to (B, K, h', w') logits (or torchvision's dict).
    image : array (H, W[, C]), tensor (C, H, W), or path
        uint8 is scaled to [0, 1] (uint16 by 65535) unless ``preprocess`` is given; a gray image
        for a 3-channel model is replicated. TIFF files are read tile by tile.
    tile, overlap : int or (int, int), float
        Tile side in pixels (or (height, width)), and the fraction of it shared by neighbours
        (0 <= overlap < 1). Images smaller than a tile run as one tile of their own size.
    batch_size : int
        Tiles per forward pass.
    weighting : {"gaussian", "uniform"}
        ``"gaussian"`` or ``"uniform"`` blending inside each tile's interior.
    output : {"labels", "probs"}
        ``"labels"``: (H, W) uint8 class map (int32 beyond 256 classes); ``"probs"``: (K, H, W)
        probabilities in ``probs_dtype``.
    tta : sequence, optional
        Test-time augmentation, e.g. ``("hflip", "vflip", (0.75, 1.0, 1.25))``: every
        (scale, flip) pair, probabilities averaged, per tile.
    preprocess : callable, optional
        ``preprocess(region) -> (C, h, w)`` float tensor or array, given the raw region
        ((h, w, C) array, or (C, h, w) tensor for tensor input); replaces the [0, 1] scaling.
    device, amp : str or torch.device, bool
        Where the model runs (default: where its parameters are) and mixed precision.
    out : None, ndarray or path
        None (a new array), an array to fill, or a ``.tif``/``.npy`` path to memory-map.
    max_memory : int or str, optional
        Bytes (or "2GB"): refuse, once the first batch tells the class count and before any
        output is allocated, if seglab's own buffers would not fit.
    align : int
        Tile starts are multiples of this (the network's output stride; 32 suits seglab's and
        torchvision's models), so each tile sees the pooling grid of the whole image.
    progress : bool
        A progress bar over the tiles.
    """
    t_h, t_w = _pair_positive(tile, "tile")
    _check_options(overlap, batch_size, weighting, output, align)
    flips, scales = parse_tta(tta)
    source = ImageSource(image)
    h, w = source.height, source.width
    model, dev, was_training = _evaluating(model, device)
    run, in_channels = make_runner(model, dev, amp)
    load = _tile_loader(source, preprocess, in_channels)
    run = with_tta(run, flips, scales)
    rows = axis_tiles(h, t_h, overlap, align)
    cols = axis_tiles(w, t_w, overlap, align)
    col_weights = [_axis_weight(x0, n, w, m, weighting) for x0, n, m in cols]
    groups: dict[int, list[int]] = {}  # batches of same-width tiles (the last may be wider)
    for c, (_, tw, _) in enumerate(cols):
        groups.setdefault(tw, []).append(c)
    budget = {
        "tile": max(t_h, t_w),
        "batch_size": batch_size,
        "channels": source.channels,
        "itemsize": np.dtype(probs_dtype).itemsize,
        "max_memory": max_memory,
        "image_in_memory": not isinstance(image, (str, os.PathLike)),
    }
    blend = _Blender(h, w, max(n for _, n, _ in rows), output, out, probs_dtype, budget)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", disable=not progress)
    try:
        with torch.inference_mode():
            for r, (y0, th, my) in enumerate(rows):
                wy = _axis_weight(y0, th, h, my, weighting)
                for tw, members in groups.items():
                    for i in range(0, len(members), batch_size):
                        chunk = members[i : i + batch_size]
                        batch = torch.stack([load(y0, th, cols[c][0], tw) for c in chunk])
                        probs = _run_checked(run, batch)
                        for c, prob in zip(chunk, probs, strict=True):
                            blend.add(prob, wy[:, None] * col_weights[c][None, :], cols[c][0])
                        bar.update(len(chunk))
                last = r == len(rows) - 1
                blend.finish_rows(y0, (h - y0) if last else rows[r + 1][0] - y0, last)
        return blend.close()
    finally:
        bar.close()
        blend.discard()
        if isinstance(model, nn.Module) and was_training:
            model.train()


#: What predict_tiled's options accept (seglab._constraints).
CONSTRAINTS = {
    "overlap": Interval(float, 0, 1, "left"),  # a fraction of the tile shared by neighbours
    "batch_size": Interval(int, 1),
    "weighting": Options(("gaussian", "uniform")),
    "output": Options(("labels", "probs")),
    "align": Interval(int, 1),
}


def _check_options(overlap, batch_size, weighting, output, align) -> None:
    validate(
        dict(
            overlap=overlap, batch_size=batch_size, weighting=weighting, output=output, align=align
        ),
        CONSTRAINTS,
    )


def _evaluating(model, device) -> tuple[Any, torch.device, bool]:
    """The model in eval mode on its device: (model, device, whether it was training)."""
    if not isinstance(model, nn.Module):
        return model, torch.device(device or "cpu"), False
    if device is None:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = torch.device(device)
        model = model.to(dev)
    was_training = model.training
    model.eval()
    return model, dev, was_training


def _tile_loader(source, preprocess: Callable | None, in_channels: int | None) -> Callable:
    """``load(y0, th, x0, tw)`` -> the (C, th, tw) float tile the model takes."""
    replicate = False
    if preprocess is None and in_channels is not None and source.channels != in_channels:
        if source.channels == 1 and in_channels == 3:
            replicate = True
        else:
            raise ValueError(
                f"the image has {source.channels} channel(s) but the model expects "
                f"{in_channels}; convert the image (or pass preprocess=)"
            )

    def load(y0: int, th: int, x0: int, tw: int) -> torch.Tensor:
        region = source.region(y0, y0 + th, x0, x0 + tw)
        if preprocess is not None:
            t = preprocess(region)
            t = torch.as_tensor(np.asarray(t) if not isinstance(t, torch.Tensor) else t)
            if t.dim() != 3 or t.shape[-2:] != (th, tw):
                raise ValueError(
                    f"preprocess must return a (C, {th}, {tw}) tile, got {tuple(t.shape)}"
                )
            return t.float()
        t = to_float_chw(region)
        return t.expand(3, -1, -1) if replicate else t

    return load


class _Blender:
    """Weighted tile probabilities summed over a band of rows as tall as a tile; rows no later
    tile reaches are written out (labels or probabilities) and the band moves down."""

    def __init__(self, h, w, buffer_rows, output, out, probs_dtype, budget) -> None:
        self.h, self.w, self.rows, self.output = h, w, buffer_rows, output
        self.out, self.probs_dtype, self.budget = out, probs_dtype, budget
        self.acc = self.wsum = self.result = self.tmp = self.final = None

    def _allocate(self, k: int) -> None:
        """At the first batch the class count is known: check the memory, open the output."""
        b = self.budget
        _check_budget(
            estimate_memory(
                self.h,
                self.w,
                k,
                b["tile"],
                b["batch_size"],
                b["channels"],
                self.output,
                b["itemsize"],
                image_in_memory=b["image_in_memory"],
                output_in_memory=self.out is None,
            ),
            b["max_memory"],
        )
        if self.output == "labels":
            shape, dtype = (self.h, self.w), (np.uint8 if k <= 256 else np.int32)
        else:
            shape, dtype = (k, self.h, self.w), self.probs_dtype
        self.result, self.tmp, self.final = _open_output(self.out, shape, dtype)
        self.acc = np.zeros((k, self.rows, self.w), np.float32)
        self.wsum = np.zeros((self.rows, self.w), np.float32)

    def add(self, prob, weight: np.ndarray, x0: int) -> None:
        if self.acc is None:
            self._allocate(prob.shape[0])
        th, tw = weight.shape
        self.acc[:, :th, x0 : x0 + tw] += prob * weight
        self.wsum[:th, x0 : x0 + tw] += weight

    def finish_rows(self, y0: int, done: int, last: bool) -> None:
        """Rows ``y0 .. y0 + done`` are final: write them, then shift the band."""
        _finish(self.result, self.acc[:, :done], self.wsum[:done], y0, self.output)
        if not last:
            keep = self.rows - done
            self.acc[:, :keep] = self.acc[:, done:]
            self.acc[:, keep:] = 0
            self.wsum[:keep] = self.wsum[done:]
            self.wsum[keep:] = 0

    def close(self):
        """The result; a memory-mapped file output is moved into place first."""
        if self.tmp is not None:
            if hasattr(self.result, "flush"):
                self.result.flush()
            self.result = None
            os.replace(self.tmp, self.final)
            self.tmp = None
            self.result = _reopen(self.final)
        return self.result

    def discard(self) -> None:
        """A failed run leaves no temporary output behind."""
        if self.tmp is not None:
            self.result = None
            Path(self.tmp).unlink(missing_ok=True)


def _reopen(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        return tifffile.memmap(path, mode="r")
    return np.load(path, mmap_mode="r")


def _run_checked(run: Callable, batch: torch.Tensor) -> np.ndarray:
    try:
        return run(batch).numpy()
    except RuntimeError as exc:  # a size or channel count the model cannot take, and the like
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"the model failed on a batch of shape {tuple(batch.shape)}: {first}"
        ) from None


def _check_budget(need: int, max_memory) -> None:
    limit = parse_bytes(max_memory, "max_memory") or 0
    if limit and need > limit:
        raise ValueError(
            f"tiled prediction needs about {need / 2**30:.2f} GiB of buffers (output, "
            f"accumulator, batch) but max_memory is {limit / 2**30:.2f} GiB; write the output "
            "to disk (out='labels.tif'), ask for output='labels', use probs_dtype=float16, "
            "or lower tile / batch_size"
        )


def _finish(result: np.ndarray, acc: np.ndarray, wsum: np.ndarray, y0: int, output: str) -> None:
    probs = acc / wsum  # every pixel has weight > 0 (the tile interiors cover the image)
    rows = slice(y0, y0 + probs.shape[1])
    if output == "labels":
        result[rows] = probs.argmax(0)
    else:
        result[:, rows] = probs


def _pair_positive(value, name: str) -> tuple[int, int]:
    vals = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(vals) != 2 or any(
        isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in vals
    ):
        raise ValueError(f"{name} must be a positive integer or (height, width), got {value!r}")
    return int(vals[0]), int(vals[1])
