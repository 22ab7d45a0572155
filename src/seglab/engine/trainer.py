"""A small, explicit training engine: a plain PyTorch loop you can read top to bottom.

``train(config)`` prepares the run folder (:func:`prepare_run_folder`: a folder that holds an
earlier run is refused unless ``resume`` or ``overwrite`` says what to do with it), builds the
data, the model, the loss, the optimiser and the schedule from the config (:func:`setup`), then
for each epoch trains (:func:`train_one_epoch`: shuffled with a generator seeded by (seed, epoch),
optional gradient accumulation, clipping and mixed precision) and evaluates and checkpoints
(:func:`evaluate_and_checkpoint`: a row in ``metrics.csv`` / ``metrics.jsonl``, ``last.pt``, and
``best.pt`` when the validation score improves, all written atomically). A checkpoint holds
everything needed to resume exactly where the last completed epoch ended. A NaN or infinite loss
stops the run with a message; the last good checkpoint stays. Messages go to the ``seglab``
logger; progress bars to tqdm.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._checks import resolve_device
from ..data import PatchDataset, make_dataset
from ..data.instances import instance_collate
from ..losses import CEDiceLoss, CrossEntropyLoss, DiceLoss, median_frequency_weights
from ..models import build, is_instance_model, load_matching
from ..models.sliding import PatchClassifier
from .checkpoint import RUN_FILES, load_checkpoint, load_state, save_checkpoint
from .evaluate import run_evaluation
from .run_folder import prepare_run_folder, restore_old_run, set_aside_old_run
from .run_log import INSTANCE_FIELDS, SEMANTIC_FIELDS, log_row, truncate_log

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """The run cannot go on (a NaN loss, say); the message says why and what was kept."""


def make_loss(cfg: dict, train_set) -> nn.Module:
    """The loss of the config, with class weights (median frequency from the training set if asked)."""
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
    """The optimiser of the config over the parameters that learn."""
    o = cfg["optimizer"]
    params = [p for p in model.parameters() if p.requires_grad]
    if o["name"] == "sgd":
        return torch.optim.SGD(
            params, lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"]
        )
    return torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])


def make_schedule(cfg: dict, optimizer: torch.optim.Optimizer, total_iters: int):
    """The learning-rate schedule of the config (warm-up, then poly, cosine or constant), per step."""
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


@dataclass(kw_only=True)
class Run:
    """Everything a training run holds between epochs."""

    cfg: dict
    out: Path
    device: torch.device
    world: int
    rank: int
    own_group: bool
    train_set: Any
    val_set: Any
    class_map: Any
    model: nn.Module
    net: nn.Module
    criterion: nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    use_amp: bool
    instance: bool
    steps_per_epoch: int
    start_epoch: int = 0
    best_score: float = -1.0
    global_step: int = 0
    board: Any = None


def setup(cfg: dict, resume: bool = False) -> Run:
    """Build the data, model, loss, optimiser and schedule; with ``resume``, restore them from
    ``OUT/last.pt`` and drop log rows of epochs after it (a kill between log and checkpoint)."""
    out = Path(cfg["out"])
    t = cfg["train"]
    device = resolve_device(t["device"])
    world, rank, device, own_group = _distributed(device)
    if t["batch_size"] % world:
        raise ValueError(
            f"train.batch_size {t['batch_size']} must be divisible by the {world} processes"
        )
    torch.manual_seed(t["seed"])
    random.seed(t["seed"])
    d = cfg["data"]
    train_set = make_dataset(d, "train", train=True, seed=t["seed"])
    val_set = make_dataset(d, "val", train=False, seed=t["seed"])
    sizes = getattr(train_set, "sizes", None)
    if sizes and d["crop"] is None and t["batch_size"] > 1 and len(set(sizes)) > 1:
        raise ValueError(
            f"the training images in {d['root']} differ in size, so they cannot be batched: set "
            "data.crop (e.g. 256) or train.batch_size=1"
        )
    class_map = train_set.class_map
    model = build(
        cfg["model"]["name"], num_classes=class_map.num_classes, **cfg["model"]["options"]
    )
    if isinstance(model, PatchClassifier):  # train on patches cut from the training images
        train_set = PatchDataset(
            make_dataset(d, "train", train=False, seed=t["seed"]),
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
        logger.info(
            "fine-tuning from %s; %s",
            cfg["model"]["pretrained"],
            f"re-initialised (shape or name differs): {shown}" if reset else "every layer loaded",
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
    run = Run(
        cfg=cfg,
        out=out,
        device=device,
        world=world,
        rank=rank,
        own_group=own_group,
        train_set=train_set,
        val_set=val_set,
        class_map=class_map,
        model=model,
        net=net,
        criterion=criterion,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        use_amp=use_amp,
        instance=instance,
        steps_per_epoch=steps_per_epoch,
    )
    if resume:
        _resume(run)
    run.global_step = run.start_epoch * steps_per_epoch
    return run


def _resume(run: Run) -> None:
    """Restore model, optimiser, schedule, scaler and RNG states from ``OUT/last.pt``; drop log
    rows of epochs after it (a kill between log and checkpoint)."""
    ckpt = load_checkpoint(run.out / "last.pt")
    load_state(run.model, ckpt["model"], run.cfg["model"]["name"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng"]["torch"])
    random.setstate(ckpt["rng"]["python"])
    run.start_epoch, run.best_score = ckpt["epoch"] + 1, ckpt["best_score"]
    if run.rank == 0:
        truncate_log(run.out, run.start_epoch)


def train_one_epoch(
    run: Run, epoch: int, progress: bool = True, on_step: Callable[[int], None] | None = None
) -> dict:
    """One pass over the training set; returns the epoch's row (loss, lr, seconds, loss terms)."""
    from tqdm.auto import tqdm

    t = run.cfg["train"]
    model, optimizer, scaler, device = run.model, run.optimizer, run.scaler, run.device
    model.train()
    order = torch.randperm(
        len(run.train_set), generator=torch.Generator().manual_seed(t["seed"] * 100_003 + epoch)
    )
    if run.world > 1:  # each process takes its share of every global batch
        order = _rank_share(order, t["batch_size"], run.world, run.rank)
    per_process = t["batch_size"] // run.world
    n_batches = math.ceil(len(order) / per_process)
    collate = instance_collate if run.instance else None
    batches = _loader(run.train_set, order, per_process, t["num_workers"], collate)
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
        with torch.autocast(device.type, enabled=run.use_amp):
            loss, parts = loss_for(run, x, y)
        for k, v in parts.items():
            terms.setdefault(k, []).append(v.item())
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}; stopped. The "
                f"last good checkpoint is {run.out / 'last.pt'} (lower optimizer.lr, or check the data)"
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
            run.scheduler.step()
            run.global_step += 1
            if on_step is not None:
                on_step(run.global_step)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    return {
        "epoch": epoch + 1,
        "train_loss": float(np.mean(losses)),
        "lr": run.scheduler.get_last_lr()[0],
        "seconds": time.perf_counter() - started,
    } | {k: float(np.mean(v)) for k, v in terms.items()}


def loss_for(run: Run, x, y) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The batch's loss and its named terms, as the kind of model defines them: an instance
    model (Mask R-CNN) returns its five losses itself (RPN objectness and box, classifier, box,
    mask); a patch classifier predicts one centre pixel per patch; a dense network a map."""
    device = run.device
    if run.instance:
        x = [img.to(device) for img in x]
        y = [{k: _to(v, device) for k, v in tgt.items()} for tgt in y]
        parts = run.net(x, y)
        return sum(parts.values()), parts
    x, y = x.to(device), y.to(device)
    logits = run.net(x)
    if logits.dim() == 2:  # a patch classifier: one centre pixel per patch
        logits, y = logits[..., None, None], y.view(-1, 1, 1)
    return run.criterion(logits, y), {}


def evaluate_and_checkpoint(run: Run, epoch: int, row: dict) -> dict:
    """Validate (when due), log the row, write ``last.pt`` (when due) and ``best.pt`` (when the
    score improved: mean IoU, or mask AP50 for instance models). Returns the metrics."""
    t = run.cfg["train"]
    metrics: dict = {}
    if (epoch + 1) % t["eval_every"] == 0 or epoch + 1 == t["epochs"]:
        metrics = run_evaluation(run.model, run.val_set, run.class_map, run.device)
        fields = INSTANCE_FIELDS if run.instance else SEMANTIC_FIELDS
        row |= {k: metrics[k] for k in fields}
        if not run.instance:
            row["iou"] = metrics["iou"]
    log_row(run.out, row)
    if run.board is not None:
        for key, value in row.items():
            if isinstance(value, float) and key != "seconds":
                run.board.add_scalar(key, value, epoch + 1)
        run.board.flush()
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
        "epoch": epoch,
        "best_score": run.best_score,
        "config": run.cfg,
        "class_map": run.class_map.to_dict(),
        "metrics": dict(row),
    }
    score = row.get("mask_ap50" if run.instance else "mean_iou")  # what "best" means
    if score is not None and score > run.best_score:
        run.best_score = state["best_score"] = score
        save_checkpoint(run.out / "best.pt", state)
    if (epoch + 1) % t["save_every"] == 0 or epoch + 1 == t["epochs"]:
        save_checkpoint(run.out / "last.pt", state)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float))
    logger.info("epoch %d/%d: %s", epoch + 1, t["epochs"], shown)
    return metrics


def train(
    cfg: dict,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Train as ``cfg`` says; returns the last validation metrics.

    Parameters
    ----------
    cfg : dict
        A validated config (:func:`seglab.engine.load_config`).
    resume : bool
        Continue the run in ``cfg["out"]`` from its ``last.pt``.
    progress : bool
        Progress bars.
    on_step : callable, optional
        Called with the global step after every optimiser step (tests interrupt runs with it).
    overwrite : bool
        Replace an earlier run in ``cfg["out"]`` (refused otherwise).
    """
    out = Path(cfg["out"])
    prepare_run_folder(out, cfg, resume, overwrite)
    run = setup(cfg, resume)
    # The earlier run is replaced only once the new one has started: until its first epoch is
    # written, a failure (or a signal) puts the old files back.
    old = set_aside_old_run(out) if overwrite and run.rank == 0 else None
    metrics: dict = {}
    try:
        if run.rank == 0:
            run.board = _tensorboard(cfg["train"]["tensorboard"], out)
        for epoch in range(run.start_epoch, cfg["train"]["epochs"]):
            row = train_one_epoch(run, epoch, progress, on_step)
            if run.rank == 0:  # one process evaluates and writes; the others wait for it
                metrics = evaluate_and_checkpoint(run, epoch, row)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
                old = None
            if run.world > 1:
                dist.barrier()
    except BaseException:
        if old is not None:
            if run.board is not None:
                run.board.close()
                run.board = None
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
            restore_old_run(out, old)
        raise
    finally:
        if run.board is not None:
            run.board.close()
        if run.own_group:
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


def _to(value, device: torch.device):
    return value.to(device) if isinstance(value, torch.Tensor) else value
