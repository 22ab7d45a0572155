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

import itertools
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TiffRows",
    "estimate_memory",
    "export_onnx",
    "load_onnx",
    "open_image",
    "parse_tta",
    "predict_tiled",
]

_TIFF = (".tif", ".tiff")


# ----------------------------------------------------------------------------- image sources


class _Source:
    """An image as (H, W, C) regions: a numpy array, a (C, H, W) tensor, or a file read by
    region where the format allows (TIFF through a memory map)."""

    def __init__(self, image: Any) -> None:
        self.chw = False
        if isinstance(image, (str, os.PathLike)):
            image = open_image(Path(image))
        if isinstance(image, torch.Tensor):
            if image.dim() == 2:
                image = image[None]
            if image.dim() != 3:
                raise ValueError(
                    f"a tensor image must be (C, H, W) or (H, W), got shape {tuple(image.shape)}"
                )
            self.chw = True
            self.array = image.detach().cpu()
            c, h, w = self.array.shape
        elif isinstance(image, (np.ndarray, TiffRows)):
            if image.ndim == 2:
                image = image[..., None] if isinstance(image, np.ndarray) else image.as_3d()
            if image.ndim != 3:
                raise ValueError(
                    f"an image array must be (H, W) or (H, W, C), got shape {image.shape}"
                )
            self.array = image
            h, w, c = image.shape
        else:
            raise ValueError(
                "image must be a numpy array (H, W[, C]), a (C, H, W) tensor or an image file "
                f"path, got {type(image).__name__}"
            )
        if h < 1 or w < 1:
            raise ValueError(f"the image is empty ({h} x {w})")
        self.height, self.width, self.channels = h, w, c

    def region(self, y0: int, y1: int, x0: int, x1: int):
        """The raw region: (h, w, C) array, or (C, h, w) tensor for tensor input."""
        if self.chw:
            return self.array[:, y0:y1, x0:x1]
        if isinstance(self.array, TiffRows):  # read the whole row of tiles once, then slice
            return self.array.rows(y0, y1)[:, x0:x1]
        return np.asarray(self.array[y0:y1, x0:x1])


class TiffRows:
    """An uncompressed, contiguous TIFF image read by rows on demand, array-like: ``shape``,
    ``dtype``, ``ndim`` and ``[rows, cols]`` indexing return numpy arrays. Only the rows asked for
    are read (with one seek), and the last block of rows is cached, so tiles of one row share a
    read; nothing stays mapped, so the resident memory is one row of tiles, not the file."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype) -> None:
        self.path, self.offset = path, offset
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self._row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        self._cache: tuple[int, int, np.ndarray] | None = None

    def as_3d(self) -> TiffRows:
        """The same file seen as (H, W, 1): a gray image with its channel axis."""
        return TiffRows(self.path, self.offset, (*self.shape, 1), self.dtype)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] <= y0 and y1 <= self._cache[1]:
            c0, _, block = self._cache
            return block[y0 - c0 : y1 - c0]
        with open(self.path, "rb") as f:
            f.seek(self.offset + y0 * self._row_bytes)
            data = f.read((y1 - y0) * self._row_bytes)
        block = np.frombuffer(data, self.dtype).reshape(y1 - y0, *self.shape[1:])
        self._cache = (y0, y1, block)
        return block

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows = key[0] if isinstance(key[0], slice) else slice(key[0], key[0] + 1)
        start, stop, step = rows.indices(self.shape[0])
        if step == 1:
            block = self.rows(start, max(start, stop))
        else:
            block = np.stack([self.rows(y, y + 1)[0] for y in range(start, stop, step)])
        out = block[(slice(None), *key[1:])]
        return out if isinstance(key[0], slice) else out[0]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.rows(0, self.shape[0])
        return out.astype(dtype) if dtype is not None else out


def open_image(path: str | os.PathLike):
    """An image file as an array without reading more than needed: an uncompressed, contiguous
    TIFF becomes a :class:`TiffRows` (rows read on demand); compressed TIFFs and other formats
    (PNG, JPEG: no random access) are decoded whole."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.suffix.lower() in _TIFF:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                page = tif.pages[0]
                shape = series.shape
                dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
                readable = (
                    len(tif.pages) == 1
                    and bool(page.is_contiguous)
                    and int(page.compression) == 1  # none
                    and int(page.planarconfig) == 1  # pixels interleaved: (H, W, C) rows
                    and len(shape) in (2, 3)
                )
                offset = int(page.dataoffsets[0]) if readable else 0
            if readable:
                return TiffRows(path, offset, shape, dtype)
            array = tifffile.imread(path)
            if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
                array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage -> (H, W, C)
            return array
        except Exception as exc:
            raise ValueError(f"{path} could not be read as a TIFF: {exc}") from None
    from .io import read_image

    return read_image(path)  # PNG/JPEG cannot be read by region: decoded whole


def _to_float(region, channels: int) -> torch.Tensor:
    """Default preprocessing: (C, h, w) float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""
    if isinstance(region, torch.Tensor):
        t = region
        if not t.is_floating_point():
            t = t.float() / (255.0 if t.dtype == torch.uint8 else 65535.0)
        return t.float()
    a = np.asarray(region)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif a.dtype.kind in "iub":
        raise ValueError(f"unsupported integer image dtype {a.dtype}; expected uint8 or uint16")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


# ----------------------------------------------------------------------------- model runners


class _OnnxRunner:
    """An onnxruntime session called like a module on CPU tensors."""

    def __init__(self, session) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        c = inp.shape[1] if len(inp.shape) == 4 else None
        self.in_channels = c if isinstance(c, int) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


def load_onnx(path: str | os.PathLike, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` for ``path`` (CUDA provider when asked and present)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ValueError("ONNX models need onnxruntime: pip install 'seglab[onnx]'") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise ValueError(f"{path} is not an ONNX model onnxruntime can load: {exc}") from None


def _model_in_channels(model: nn.Module) -> int | None:
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, int):
        return declared
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return None


def _logits(out: Any) -> torch.Tensor:
    """The logits tensor of a model's output: a tensor, torchvision's dict ("out"), or the first
    element of a tuple/list."""
    if isinstance(out, dict):
        if "out" not in out:
            raise ValueError(f"the model returned a dict without an 'out' entry: {list(out)}")
        out = out["out"]
    elif isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return (B, K, h, w) logits, got {shape}")
    return out


def _make_runner(model, device: torch.device, amp: bool) -> tuple[Callable, int | None]:
    """(function: (B, C, h, w) CPU float batch -> (B, K, h, w) CPU float32 probabilities,
    the number of input channels the model expects, if known)."""
    if isinstance(model, (str, os.PathLike)):
        model = load_onnx(model, str(device))
    if hasattr(model, "get_inputs") and hasattr(model, "run"):  # an onnxruntime session
        runner = _OnnxRunner(model)
        forward, channels = runner, runner.in_channels
    elif isinstance(model, nn.Module):
        from .models.sliding import as_dense

        model = as_dense(model)
        channels = _model_in_channels(model)

        def forward(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device, non_blocking=True)
            dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                return _logits(model(x)).float()

    else:
        raise ValueError(
            f"model must be an nn.Module, an ONNX file or an onnxruntime session, got {type(model)}"
        )

    def run(x: torch.Tensor) -> torch.Tensor:
        logits = _logits(forward(x))
        if logits.shape[-2:] != x.shape[-2:]:  # lower-resolution logits: back to the tile
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if logits.shape[1] == 1:  # one logit per pixel: a binary model
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], 1).cpu()
        return logits.softmax(1).cpu()

    return run, channels


# ----------------------------------------------------------------------------- TTA


def parse_tta(tta) -> tuple[list[str], list[float]]:
    """``("hflip", "vflip", (0.75, 1.0, 1.25))`` -> (flips, scales); also a comma-separated
    string such as ``"hflip,0.75,1.25"``. The identity (no flip, scale 1) is always included."""
    if tta is None or tta == ():
        return [], [1.0]
    if isinstance(tta, str):
        tta = [t.strip() for t in tta.split(",") if t.strip()]
    flips, scales = [], []
    for item in tta:
        if isinstance(item, str) and item in ("hflip", "vflip"):
            flips.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            scales.append(float(item))
        elif isinstance(item, (tuple, list)):
            scales.extend(float(s) for s in item)
        else:
            try:
                scales.append(float(item))
            except (TypeError, ValueError):
                raise ValueError(
                    f"unknown test-time augmentation {item!r}: use 'hflip', 'vflip' or scales "
                    "such as (0.75, 1.0, 1.25)"
                ) from None
    if any(not math.isfinite(s) or s <= 0 for s in scales):
        raise ValueError(f"TTA scales must be positive numbers, got {scales}")
    scales = sorted(set(scales) | {1.0})
    return sorted(set(flips)), scales


def _with_tta(run: Callable, flips: list[str], scales: list[float]) -> Callable:
    """Average the probabilities over every (scale, flip) combination, each mapped back."""
    if not flips and scales == [1.0]:
        return run
    combos = list(itertools.product(scales, [None, *flips]))

    def tta_run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        total = None
        for scale, flip in combos:
            xi = x
            if scale != 1.0:
                size = (max(1, round(h * scale)), max(1, round(w * scale)))
                xi = F.interpolate(xi, size=size, mode="bilinear", align_corners=False)
            dims = {"hflip": [-1], "vflip": [-2], None: None}[flip]
            if dims:
                xi = xi.flip(dims)
            p = run(xi)
            if dims:
                p = p.flip(dims)
            if scale != 1.0:
                p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
        return total / len(combos)

    return tta_run


# ----------------------------------------------------------------------------- tiling


def _axis_tiles(n: int, tile: int, overlap: float, align: int) -> list[tuple[int, int, int]]:
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


def _parse_bytes(value) -> int:
    if value is None:
        return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmMgGtT]?)i?[bB]?\s*", str(value))
    if not m:
        raise ValueError(f"max_memory must be bytes or a size such as '2GB', got {value!r}")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


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
    if suffix in _TIFF:
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
    tile, overlap
        Tile side in pixels (or (height, width)), and the fraction of it shared by neighbours
        (0 <= overlap < 1). Images smaller than a tile run as one tile of their own size.
    batch_size
        Tiles per forward pass.
    weighting
        ``"gaussian"`` or ``"uniform"`` blending inside each tile's interior.
    output
        ``"labels"``: (H, W) uint8 class map (int32 beyond 256 classes); ``"probs"``: (K, H, W)
        probabilities in ``probs_dtype``.
    tta
        Test-time augmentation, e.g. ``("hflip", "vflip", (0.75, 1.0, 1.25))``: every
        (scale, flip) pair, probabilities averaged, per tile.
    preprocess
        ``preprocess(region) -> (C, h, w)`` float tensor or array, given the raw region
        ((h, w, C) array, or (C, h, w) tensor for tensor input); replaces the [0, 1] scaling.
    device, amp
        Where the model runs (default: where its parameters are) and mixed precision.
    out
        None (a new array), an array to fill, or a ``.tif``/``.npy`` path to memory-map.
    max_memory
        Bytes (or "2GB"): refuse, once the first batch tells the class count and before any
        output is allocated, if seglab's own buffers would not fit.
    align
        Tile starts are multiples of this (the network's output stride; 32 suits seglab's and
        torchvision's models), so each tile sees the pooling grid of the whole image.
    progress
        A progress bar over the tiles.
    """
    t_h, t_w = _pair_positive(tile, "tile")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)):
        raise ValueError(f"overlap must be a number in [0, 1), got {overlap!r}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1) (a fraction of the tile), got {overlap}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if weighting not in ("gaussian", "uniform"):
        raise ValueError(f"weighting must be 'gaussian' or 'uniform', got {weighting!r}")
    if output not in ("labels", "probs"):
        raise ValueError(f"output must be 'labels' or 'probs', got {output!r}")
    flips, scales = parse_tta(tta)
    if isinstance(align, bool) or not isinstance(align, int) or align < 1:
        raise ValueError(f"align must be an integer >= 1, got {align!r}")

    source = _Source(image)
    h, w = source.height, source.width
    if isinstance(model, nn.Module):
        if device is None:
            p = next(model.parameters(), None)
            dev = p.device if p is not None else torch.device("cpu")
        else:
            dev = torch.device(device)
            model = model.to(dev)
        was_training = model.training
        model.eval()
    else:
        dev = torch.device(device or "cpu")
        was_training = False
    run, in_channels = _make_runner(model, dev, amp)
    replicate = False
    if preprocess is None and in_channels is not None and source.channels != in_channels:
        if source.channels == 1 and in_channels == 3:
            replicate = True
        else:
            raise ValueError(
                f"the image has {source.channels} channel(s) but the model expects "
                f"{in_channels}; convert the image (or pass preprocess=)"
            )
    run = _with_tta(run, flips, scales)

    rows = _axis_tiles(h, t_h, overlap, align)
    cols = _axis_tiles(w, t_w, overlap, align)
    col_weights = [_axis_weight(x0, n, w, m, weighting) for x0, n, m in cols]
    buffer_rows = max(n for _, n, _ in rows)

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
        t = _to_float(region, source.channels)
        return t.expand(3, -1, -1) if replicate else t

    from tqdm.auto import tqdm

    bar = tqdm(total=len(rows) * len(cols), desc="tiles", unit="tile", disable=not progress)
    result = tmp = final = None
    acc = wsum = None
    try:
        with torch.inference_mode():
            for r, (y0, th, my) in enumerate(rows):
                wy = _axis_weight(y0, th, h, my, weighting)
                # batches of same-width tiles (the last column may be wider: see _axis_tiles)
                groups: dict[int, list[int]] = {}
                for c, (_, tw, _) in enumerate(cols):
                    groups.setdefault(tw, []).append(c)
                for tw, members in groups.items():
                    for i in range(0, len(members), batch_size):
                        chunk = members[i : i + batch_size]
                        batch = torch.stack([load(y0, th, cols[c][0], tw) for c in chunk])
                        probs = _run_checked(run, batch)
                        if acc is None:  # first batch: now the number of classes is known
                            k = probs.shape[1]
                            _check_budget(
                                estimate_memory(
                                    h, w, k, max(t_h, t_w), batch_size, source.channels,
                                    output, np.dtype(probs_dtype).itemsize,
                                    image_in_memory=not isinstance(image, (str, os.PathLike)),
                                    output_in_memory=out is None,
                                ),
                                max_memory,
                            )  # fmt: skip
                            shape, dtype = (
                                ((h, w), np.uint8 if k <= 256 else np.int32)
                                if output == "labels"
                                else ((k, h, w), probs_dtype)
                            )
                            result, tmp, final = _open_output(out, shape, dtype)
                            acc = np.zeros((k, buffer_rows, w), np.float32)
                            wsum = np.zeros((buffer_rows, w), np.float32)
                        for c, p in zip(chunk, probs, strict=True):
                            x0 = cols[c][0]
                            weight = wy[:, None] * col_weights[c][None, :]
                            acc[:, :th, x0 : x0 + tw] += p * weight
                            wsum[:th, x0 : x0 + tw] += weight
                        bar.update(len(chunk))
                # rows above the next tile row are final: write them, then shift the buffer
                last = r == len(rows) - 1
                done = (h - y0) if last else rows[r + 1][0] - y0
                _finish(result, acc[:, :done], wsum[:done], y0, output)
                if not last:
                    acc[:, : buffer_rows - done] = acc[:, done:]
                    acc[:, buffer_rows - done :] = 0
                    wsum[: buffer_rows - done] = wsum[done:]
                    wsum[buffer_rows - done :] = 0
        if tmp is not None:
            if hasattr(result, "flush"):
                result.flush()
            del result
            os.replace(tmp, final)
            tmp = None
            result = _reopen(final)
    finally:
        bar.close()
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(model, nn.Module) and was_training:
            model.train()
    return result


def _reopen(path: Path) -> np.ndarray:
    if path.suffix.lower() in _TIFF:
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
    limit = _parse_bytes(max_memory)
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


# ----------------------------------------------------------------------------- ONNX export


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    in_channels: int | None = None,
    sizes: Sequence[tuple[int, int]] = ((256, 256), (320, 416)),
    opset: int = 17,
    check: bool = True,
    atol: float | None = None,
) -> dict:
    """Write ``model`` as ONNX with dynamic batch, height and width (input ``image``
    (B, C, H, W) float32, output ``logits`` (B, K, H, W)), atomically.

    With ``check`` (the default) onnxruntime runs the file on two different sizes and the result
    is compared with PyTorch; returns ``{"sizes": ..., "max_abs_diff": [...]}`` and raises
    ``ValueError`` if a difference exceeds ``atol`` (default 1e-3 for logits; 0.05 for Mask
    R-CNN, whose boxes are in pixels). Mask R-CNN exports through torchvision's traceable path
    (opset >= 11): one (3, H, W) image in, ``boxes``, ``labels``, ``scores``, ``masks`` out. A
    patch classifier is exported as its fully convolutional twin. The TorchScript exporter is used
    where torch has it (fast, no extra package); otherwise ``torch.export`` (needs onnxscript).
    """
    from .models import is_instance_model
    from .models.sliding import as_dense

    if not isinstance(model, nn.Module):
        raise ValueError(f"export_onnx needs an nn.Module, got {type(model).__name__}")
    sizes = [tuple(int(v) for v in s) for s in sizes]
    if not sizes:
        raise ValueError("export_onnx needs at least one (height, width) in sizes")
    was_training = model.training
    p = next(model.parameters(), None)
    dev = p.device if p is not None else torch.device("cpu")
    try:
        if is_instance_model(model):  # boxes in pixels, scores and mask probabilities
            write, compare = _detection_export(model.eval(), dev, sizes, max(opset, 11))
            atol = 0.05 if atol is None else atol
        else:
            net = as_dense(model).eval()
            c = in_channels or _model_in_channels(net) or 3
            write, compare = _logits_export(_LogitsOnly(net).eval(), dev, c, sizes, opset)
            atol = 1e-3 if atol is None else atol
        return _export_checked(Path(path), write, compare if check else None, sizes, atol)
    finally:
        model.train(was_training)


def _export_checked(path: Path, write: Callable, compare: Callable | None, sizes, atol) -> dict:
    """Export to a temporary file, compare onnxruntime with PyTorch on each size, then rename
    into place: a failed export or check leaves nothing behind."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    report: dict = {"path": str(path), "sizes": [list(s) for s in sizes], "max_abs_diff": []}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python control flow
            write(tmp)
        if compare is not None:
            session = load_onnx(tmp)
            for i, size in enumerate(sizes):
                report["max_abs_diff"].append(compare(session, i, size, report))
            if max(report["max_abs_diff"]) > atol:
                raise ValueError(
                    f"onnxruntime and PyTorch differ by up to {max(report['max_abs_diff']):.3g} "
                    f"(> {atol}) on sizes {sizes}"
                )
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return report


def _logits_export(wrapped: nn.Module, dev, c: int, sizes, opset: int):
    """(write, compare) for a module returning (B, K, H, W) logits. ``wrapped`` is in eval mode:
    the exporter restores the mode it found afterwards."""

    def write(tmp: str) -> None:
        example = (torch.rand(1, c, *sizes[0], device=dev),)
        names = {"input_names": ["image"], "output_names": ["logits"]}
        try:
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                wrapped,
                example,
                tmp,
                dynamo=False,
                dynamic_axes={"image": axes, "logits": axes},
                opset_version=opset,
                **names,
            )
        except (TypeError, RuntimeError, AttributeError, ImportError):
            from torch.export import Dim

            dims = {0: Dim("batch", max=4096), 2: Dim("height"), 3: Dim("width")}
            torch.onnx.export(
                wrapped,
                example,
                tmp,
                dynamo=True,
                dynamic_shapes=(dims,),
                opset_version=max(opset, 18),
                **names,
            )

    def compare(session, i: int, size, report: dict) -> float:
        x = torch.rand(1 + i, c, *size, generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            ref = wrapped(x.to(dev)).float().cpu().numpy()
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise ValueError(
                f"the exported model returns {got.shape} for input {tuple(x.shape)}, "
                f"PyTorch {ref.shape}: this model does not export with dynamic sizes"
            )
        return float(np.abs(got - ref).max())

    return write, compare


_DETECTION_OUTPUTS = ["boxes", "labels", "scores", "masks"]


def _detection_export(model: nn.Module, dev, sizes, opset: int):
    """(write, compare) for Mask R-CNN through torchvision's traceable path: input ``image``
    (3, H, W) float in [0, 1], one image, any H and W; outputs ``boxes`` (N, 4), ``labels``,
    ``scores``, ``masks`` (N, 1, H, W), N varying. The comparison on a random image requires the
    same detections scoring >= 0.3 (lower ones are near-ties that rounding may swap, in proposal
    ranking and NMS) and returns the largest difference of their boxes (pixels), scores and mask
    probabilities; both detection counts go to ``report["detections"]``."""

    def write(tmp: str) -> None:
        torch.onnx.export(
            model,
            ([torch.rand(3, *sizes[0], device=dev)],),
            tmp,
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=_DETECTION_OUTPUTS,
            dynamic_axes={"image": [1, 2], "boxes": [0], "labels": [0], "scores": [0]}
            | {"masks": [0, 1, 2, 3]},
        )

    def compare(session, i: int, size, report: dict) -> float:
        x = torch.rand(3, *size, generator=torch.Generator().manual_seed(i))
        with torch.inference_mode():
            ref = {k: v.float().cpu().numpy() for k, v in model([x.to(dev)])[0].items()}
        got = dict(zip(_DETECTION_OUTPUTS, session.run(None, {"image": x.numpy()}), strict=True))
        report.setdefault("detections", []).append([len(ref["scores"]), len(got["scores"])])
        sure = [np.argsort(-d["scores"])[: int((d["scores"] >= 0.3).sum())] for d in (ref, got)]
        if len(sure[0]) != len(sure[1]):
            raise ValueError(
                f"onnxruntime finds {len(sure[1])} objects scoring >= 0.3 on a {size} image, "
                f"PyTorch {len(sure[0])}"
            )
        if not len(sure[0]):
            return 0.0
        return max(
            float(np.abs(got[k][sure[1]] - ref[k][sure[0]]).max()) for k in _DETECTION_OUTPUTS
        )

    return write, compare


class _LogitsOnly(nn.Module):
    """Exports the logits tensor of models that return a dict (torchvision)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _logits(self.model(x))
