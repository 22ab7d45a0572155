"""A small, explicit training engine: a plain PyTorch loop you can read top to bottom.

``train(config)`` builds the data, the model, the loss, the optimiser and the schedule from the
config; each epoch shuffles with a generator seeded by (seed, epoch), trains with optional
gradient accumulation, clipping and mixed precision (CUDA), evaluates on the validation split,
logs a row to ``metrics.csv`` / ``metrics.jsonl``, and writes ``last.pt`` (and ``best.pt`` when
the validation mean IoU improves) atomically. A checkpoint holds the model, optimiser, scheduler,
scaler, RNG states, epoch, config and class map, so ``resume=True`` continues exactly where the
last completed epoch ended. A NaN or infinite loss stops the run with a message; the last good
checkpoint stays. Checkpoints load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data import (
    ClassMap,
    FolderDataset,
    JointTransform,
    NucleiTiles,
    PatchDataset,
    SyntheticScenes,
)
from ..data.instances import instance_collate
from ..data.public import READERS
from ..io import atomic_write_bytes
from ..losses import CEDiceLoss, CrossEntropyLoss, DiceLoss, median_frequency_weights
from ..metrics import ConfusionMatrix
from ..models import build, is_instance_model
from ..models.sliding import PatchClassifier, as_dense


class TrainingError(RuntimeError):
    """The run cannot go on (a NaN loss, say); the message says why and what was kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA GPU is visible; use 'cpu' or 'auto'")
    return torch.device(name)


def make_dataset(cfg: dict, split: str, train: bool):
    """The dataset of ``split`` ("train", "val" or "test") described by ``cfg['data']``."""
    d = cfg["data"]
    transform = None
    if train:
        transform = JointTransform(
            crop=d["crop"],
            scale=tuple(d["scale"]),
            hflip=d["hflip"],
            vflip=d["vflip"],
            color_jitter=d["color_jitter"],
            ignore_index=d["ignore_index"],
        )
    if d["dataset"] == "synthetic":
        offsets = {"train": 0, "val": 100_000, "test": 200_000}
        n = {"train": d["n_train"], "val": d["n_val"], "test": d["n_test"]}[split]
        return SyntheticScenes(
            n, tuple(d["size"]), seed=cfg["train"]["seed"] + offsets[split], transform=transform
        )
    if d["dataset"] in INSTANCE_DATASETS:
        return _instance_dataset(cfg, split, train)
    if d["dataset"] == "nuclei":
        if train:
            return NucleiTiles("train", d["tile"], stride=d["tile"] // 2, transform=transform)
        return _WholeStrip(NucleiTiles(split))
    if d["dataset"] in READERS:
        sub = {"train": d["train_split"], "val": d["val_split"], "test": d["test_split"]}[split]
        if d["dataset"] == "voc":
            return READERS["voc"](
                d["root"], sub, augmented=d["augmented"] and train, transform=transform
            )
        return READERS[d["dataset"]](d["root"], sub, transform=transform)
    names = tuple(d["classes"])
    class_map = ClassMap(names, d["ignore_index"])
    sub = {"train": d["train_split"], "val": d["val_split"], "test": d["test_split"]}[split]
    dataset = FolderDataset(d["root"], class_map, sub or None, transform)
    if (
        train
        and d["crop"] is None
        and cfg["train"]["batch_size"] > 1
        and len(set(dataset.sizes)) > 1
    ):
        raise ValueError(
            f"the training images in {d['root']} differ in size, so they cannot be batched: set "
            "data.crop (e.g. 256) or train.batch_size=1"
        )
    return dataset


INSTANCE_DATASETS = ("nuclei_instances", "coco_instances", "instance_folder", "synthetic_instances")


def _instance_dataset(cfg: dict, split: str, train: bool):
    from ..data.instances import (
        CocoInstances,
        InstanceFlips,
        InstanceFolder,
        NucleiInstances,
        SyntheticInstances,
    )

    d = cfg["data"]
    transform = InstanceFlips(d["hflip"], d["vflip"]) if train else None
    if d["dataset"] == "synthetic_instances":
        n = {"train": d["n_train"], "val": d["n_val"], "test": d["n_test"]}[split]
        offset = {"train": 0, "val": 100_000, "test": 200_000}[split]
        return SyntheticInstances(
            n, tuple(d["size"]), seed=cfg["train"]["seed"] + offset, transform=transform
        )
    if d["dataset"] == "nuclei_instances":
        if train:
            return NucleiInstances("train", d["tile"], d["tile"] // 2, transform)
        return NucleiInstances(split)
    sub = {"train": d["train_split"], "val": d["val_split"], "test": d["test_split"]}[split]
    if d["dataset"] == "instance_folder":
        return InstanceFolder(d["root"], sub or None, tuple(d["classes"] or ("object",)), transform)
    annotations = d["annotations"] or {}
    if split not in annotations:
        raise ValueError(
            f"data.annotations has no {split!r} entry: give the COCO JSON of each split, e.g. "
            "{train: ann/train.json, val: ann/val.json}"
        )
    root = Path(d["root"]) / sub if sub and (Path(d["root"]) / sub).is_dir() else d["root"]
    return CocoInstances(root, annotations[split], transform, bad=d["bad_annotations"])


class _WholeStrip(torch.utils.data.Dataset):
    """One item: the whole nuclei strip of a split (evaluation at full size, no tiling seams)."""

    def __init__(self, tiles: NucleiTiles) -> None:
        self.class_map = tiles.class_map
        self.strip = tiles.strip

    def __len__(self) -> int:
        return 1

    def pair(self, index: int):
        if index != 0:
            raise IndexError(index)
        return self.strip

    def __getitem__(self, index: int):
        from ..data.datasets import to_tensor_pair

        return to_tensor_pair(*self.pair(index))


def make_loss(cfg: dict, train_set) -> nn.Module:
    lc, ignore = cfg["loss"], cfg["data"]["ignore_index"]
    weights = lc["class_weights"]
    if weights == "median_frequency":
        k = train_set.class_map.num_classes
        if isinstance(train_set, PatchDataset):  # the sampled centres are the training pixels
            counts = np.bincount(train_set.labels.numpy(), minlength=k)[:k]
        else:
            counts = np.zeros(k)
            for i in range(len(train_set)):
                _, m = train_set.pair(i)
                m = np.asarray(m)
                counts += np.bincount(m[m != ignore].ravel(), minlength=k)[:k]
        weights = median_frequency_weights(counts)
    elif weights is not None:
        weights = torch.tensor(weights, dtype=torch.float32)
    if lc["name"] == "ce":
        return CrossEntropyLoss(weights, ignore)
    if lc["name"] == "dice":
        return DiceLoss(ignore)
    return CEDiceLoss(weights, ignore, lc["dice_weight"])


def make_optimizer(cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    o = cfg["optimizer"]
    params = [p for p in model.parameters() if p.requires_grad]
    if o["name"] == "sgd":
        return torch.optim.SGD(
            params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
        )
    return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])


def make_schedule(cfg: dict, optimizer: torch.optim.Optimizer, total_iters: int):
    s = cfg["schedule"]
    warm = int(s["warmup_iters"])

    def factor(it: int) -> float:
        if it < warm:
            return (it + 1) / warm
        t = min(1.0, (it - warm) / max(1, total_iters - warm))
        if s["name"] == "poly":
            return (1 - t) ** s["power"]
        if s["name"] == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _loader(dataset, order: torch.Tensor, batch_size: int, num_workers: int, collate=None):
    """Batches in the given order; worker processes (if any) load and augment in parallel."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order.tolist(),
        num_workers=num_workers,
        collate_fn=collate,
    )


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path) -> dict:
    """Load a seglab checkpoint (``weights_only=True``: no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a seglab checkpoint ({first[:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a seglab checkpoint (no model/config inside)")
    return ckpt


def load_matching(model: nn.Module, state: dict) -> list[str]:
    """Load every tensor of ``state`` whose name and shape fit ``model``; the others (a classifier
    for another number of classes, say) keep their fresh initialisation. Returns the names of
    the model's tensors that were not loaded."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return sorted(k for k in own if k not in fits)


def model_from_checkpoint(ckpt: dict) -> tuple[nn.Module, ClassMap]:
    cfg = ckpt["config"]
    class_map = ClassMap.from_dict(ckpt["class_map"])
    model = build(
        cfg["model"]["name"], num_classes=class_map.num_classes, **cfg["model"]["options"]
    )
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]  # one line
        raise ValueError(
            f"the checkpoint does not fit a {cfg['model']['name']} model: {detail}"
        ) from None
    return model, class_map


@torch.no_grad()
def run_evaluation(model: nn.Module, dataset, class_map: ClassMap, device: torch.device) -> dict:
    """Confusion-matrix metrics of ``model`` over ``dataset`` (one image at a time, full size);
    for an instance model, COCO box / mask AP and instance F1 (:func:`run_instance_evaluation`)."""
    if is_instance_model(model):
        return run_instance_evaluation(model, dataset, device)[0]
    model = as_dense(model)  # a patch classifier is evaluated as its fully convolutional twin
    model.eval()
    cm = ConfusionMatrix(class_map.num_classes, class_map.ignore_index)
    for i in range(len(dataset)):
        x, y = dataset[i]
        logits = model(x.unsqueeze(0).to(device))
        cm.update(logits.argmax(1)[0], y.to(device))
    return cm.compute()


@torch.no_grad()
def run_instance_evaluation(
    model: nn.Module,
    dataset,
    device: torch.device,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> tuple[dict, list[dict]]:
    """COCO box and mask AP / AP50 / AP75 (pycocotools, every detection) and instance F1 at IoU
    0.5 (detections scoring at least ``score_threshold``), pooled over ``dataset``; returns the
    metrics and the per-image outputs (on CPU)."""
    from ..metrics import _f1_counts, coco_metrics, instance_f1

    model.eval()
    targets, outputs = [], []
    tp = fp = fn = 0
    for i in range(len(dataset)):
        x, t = dataset[i]
        out = {k: v.cpu() for k, v in model([x.to(device)])[0].items()}
        targets.append(t)
        outputs.append(out)
        keep = out["scores"] >= score_threshold
        counts = instance_f1(
            (out["masks"][keep, 0] > mask_threshold).numpy(), t["masks"].numpy().astype(bool)
        )
        tp, fp, fn = tp + counts["tp"], fp + counts["fp"], fn + counts["fn"]
    metrics = coco_metrics(targets, outputs, mask_threshold)
    f1 = _f1_counts(tp, fp, fn)
    metrics |= {"f1_50": f1["f1"], "precision_50": f1["precision"], "recall_50": f1["recall"]}
    metrics |= {"tp": tp, "fp": fp, "fn": fn}
    return metrics, outputs


def train(
    cfg: dict,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train as ``cfg`` says; returns the last validation metrics. ``on_step(global_step)`` is
    called after every optimiser step (tests use it to interrupt a run)."""
    from tqdm.auto import tqdm

    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    t = cfg["train"]
    device = resolve_device(t["device"])
    world, rank, device, own_group = _distributed(device)
    if t["batch_size"] % world:
        raise ValueError(
            f"train.batch_size {t['batch_size']} must be divisible by the {world} processes"
        )
    torch.manual_seed(t["seed"])
    random.seed(t["seed"])
    train_set = make_dataset(cfg, "train", train=True)
    val_set = make_dataset(cfg, "val", train=False)
    class_map = train_set.class_map
    model = build(
        cfg["model"]["name"], num_classes=class_map.num_classes, **cfg["model"]["options"]
    )
    if isinstance(model, PatchClassifier):  # train on patches cut from the training images
        d = cfg["data"]
        train_set = PatchDataset(
            make_dataset(cfg, "train", train=False),
            model.patch_size,
            per_image=d["patches_per_image"],
            balanced=d["balanced_patches"],
            seed=t["seed"],
            hflip=d["hflip"],
            vflip=d["vflip"],
        )
    if cfg["model"]["pretrained"] and not resume:
        reset = load_matching(model, load_checkpoint(cfg["model"]["pretrained"])["model"])
        shown = ", ".join(reset[:8]) + (" ..." if len(reset) > 8 else "")
        print(
            f"seglab: fine-tuning from {cfg['model']['pretrained']}; "
            + (
                f"re-initialised (shape or name differs): {shown}"
                if reset
                else "every layer loaded"
            ),
            flush=True,
        )
    model = model.to(device)
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    use_amp = device.type == "cuda" if t["amp"] == "auto" else bool(t["amp"])
    if (t["channels_last"] == "auto" and device.type == "cuda") or t["channels_last"] is True:
        model = model.to(memory_format=torch.channels_last)
    instance = is_instance_model(model)  # Mask R-CNN: lists in, its own five losses out
    criterion = None if instance else make_loss(cfg, train_set).to(device)
    optimizer = make_optimizer(cfg, model)
    steps_per_epoch = math.ceil(len(train_set) / t["batch_size"] / t["grad_accum"])
    scheduler = make_schedule(cfg, optimizer, steps_per_epoch * t["epochs"])
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    start_epoch, best_miou, metrics = 0, -1.0, {}
    if resume and (out / "last.pt").exists():
        ckpt = load_checkpoint(out / "last.pt")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        random.setstate(ckpt["rng"]["python"])
        start_epoch, best_miou = ckpt["epoch"] + 1, ckpt["best_miou"]
    global_step = start_epoch * steps_per_epoch
    board = _tensorboard(t["tensorboard"], out) if rank == 0 else None
    for epoch in range(start_epoch, t["epochs"]):
        model.train()
        order = torch.randperm(
            len(train_set), generator=torch.Generator().manual_seed(t["seed"] * 100_003 + epoch)
        )
        if world > 1:  # each process takes its share of every global batch
            order = _rank_share(order, t["batch_size"], world, rank)
        n_batches = math.ceil(len(order) / (t["batch_size"] // world))
        batches = _loader(
            train_set,
            order,
            t["batch_size"] // world,
            t["num_workers"],
            instance_collate if instance else None,
        )
        bar = tqdm(
            batches,
            total=n_batches,
            desc=f"epoch {epoch + 1}/{t['epochs']}",
            disable=not progress,
            leave=False,
        )
        losses, terms = [], {}
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(bar):
            with torch.autocast(device.type, enabled=use_amp):
                if instance:  # loss terms: RPN objectness and box, classifier, box, mask
                    x = [img.to(device) for img in x]
                    y = [{k: _to(v, device) for k, v in tgt.items()} for tgt in y]
                    parts = net(x, y)
                    loss = sum(parts.values())
                    for k, v in parts.items():
                        terms.setdefault(k, []).append(v.item())
                else:
                    x, y = x.to(device), y.to(device)
                    logits = net(x)
                    if logits.dim() == 2:  # a patch classifier: one centre pixel per patch
                        logits, y = logits[..., None, None], y.view(-1, 1, 1)
                    loss = criterion(logits, y)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}; stopped. The last "
                    f"good checkpoint is {out / 'last.pt'} (lower optimizer.lr, or check the data)"
                )
            scaler.scale(loss / t["grad_accum"]).backward()
            losses.append(loss.item())
            if (i + 1) % t["grad_accum"] == 0 or i + 1 == n_batches:
                if t["clip_grad"]:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), t["clip_grad"])
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
                if on_step is not None:
                    on_step(global_step)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - started,
        } | {k: float(np.mean(v)) for k, v in terms.items()}
        if rank != 0:  # one process evaluates and writes; the others wait for it
            dist.barrier()
            continue
        if (epoch + 1) % t["eval_every"] == 0 or epoch + 1 == t["epochs"]:
            metrics = run_evaluation(model, val_set, class_map, device)
            if instance:
                row |= {k: metrics[k] for k in INSTANCE_FIELDS}
            else:
                row |= {
                    k: metrics[k] for k in ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")
                }
                row["iou"] = metrics["iou"]
        _log(out, row)
        if board is not None:
            for key, value in row.items():
                if isinstance(value, float) and key != "seconds":
                    board.add_scalar(key, value, epoch + 1)
            board.flush()
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "epoch": epoch,
            "best_miou": best_miou,
            "config": cfg,
            "class_map": class_map.to_dict(),
            "metrics": {k: v for k, v in row.items()},
        }
        score = row.get("mask_ap50" if instance else "mean_iou")  # what "best" means
        if score is not None and score > best_miou:
            best_miou = score
            state["best_miou"] = best_miou
            save_checkpoint(out / "best.pt", state)
        if (epoch + 1) % t["save_every"] == 0 or epoch + 1 == t["epochs"]:
            save_checkpoint(out / "last.pt", state)
        if progress:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float))
            print(f"epoch {epoch + 1}/{t['epochs']}: {shown}", flush=True)
        if world > 1:
            dist.barrier()
    if board is not None:
        board.close()
    if own_group:
        dist.destroy_process_group()
    return metrics


def _tensorboard(setting: bool | str, out: Path):
    """A SummaryWriter in OUT/tensorboard: always (True), never (False), or if the tensorboard
    package is installed ("auto")."""
    if setting is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if setting is True:
            raise ValueError(
                "train.tensorboard is true but tensorboard is not installed: pip install tensorboard"
            ) from None
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(world size, rank, this process's device, whether we started the process group). Under
    ``torchrun`` (WORLD_SIZE > 1) the group is started with NCCL on GPUs, gloo on CPUs."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 1, 0, device, False
    own = not dist.is_initialized()
    if own:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_world_size(), dist.get_rank(), device, own


def _rank_share(order: torch.Tensor, global_batch: int, world: int, rank: int) -> torch.Tensor:
    """This rank's part of each global batch (an incomplete last global batch is dropped, so that
    every process runs the same number of steps)."""
    per = global_batch // world
    full = len(order) // global_batch * global_batch
    return order[:full].view(-1, world, per)[:, rank].reshape(-1)


INSTANCE_FIELDS = (
    "mask_ap",
    "mask_ap50",
    "mask_ap75",
    "box_ap",
    "box_ap50",
    "box_ap75",
    "f1_50",
)
_CSV_FIELDS = [
    "epoch",
    "train_loss",
    "lr",
    "seconds",
    "pixel_accuracy",
    "mean_accuracy",
    "mean_iou",
    "fw_iou",
    "loss_objectness",
    "loss_rpn_box_reg",
    "loss_classifier",
    "loss_box_reg",
    "loss_mask",
    *INSTANCE_FIELDS,
]


def _to(value, device: torch.device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


def _log(out: Path, row: dict) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    flat = {k: v for k, v in row.items() if not isinstance(v, list)}
    path = out / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_CSV_FIELDS, restval="")
        if new:
            w.writeheader()
        w.writerow(flat)
