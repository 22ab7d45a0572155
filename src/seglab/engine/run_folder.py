"""The run folder's safety: what ``train`` may do with a folder that holds an earlier run.

A folder with a run is refused unless ``--resume`` (continue it, with the same config but for
where and how long it runs) or ``--overwrite``; an overwritten run is only set aside when the new
one has started (:func:`set_aside_old_run`), and put back if it fails before its first epoch is
written (:func:`restore_old_run`), or, after a SIGKILL, by the next run (:func:`prepare_run_folder`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .._signals import deferred
from ..io import check_writable, owner_tag, remove_stale_temporaries, stale_temporaries
from .checkpoint import RUN_FILES, load_checkpoint

# Config keys a resumed run may change: they do not change what is being trained.
_RESUMABLE_CHANGES = {
    "out",
    "train.epochs",
    "train.device",
    "train.num_workers",
    "train.tensorboard",
    "train.eval_every",
    "train.save_every",
}


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    if (
        isinstance(old, dict)
        and isinstance(new, dict)
        and f"{prefix}".rstrip(".") != "model.options"
    ):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def prepare_run_folder(out: Path, cfg: dict, resume: bool, overwrite: bool) -> None:
    """Check what ``out`` holds before anything is written to it.

    A folder with an earlier run (checkpoints, metrics) is refused unless ``resume`` (continue it:
    the config must be the run's, but for the number of epochs and where it runs) or
    ``overwrite`` (its run files are removed); ``resume`` on a folder without ``last.pt`` is an
    error. Temporary files left by a killed run are removed.
    """
    _recover_old_run(out)
    remove_stale_temporaries(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume and overwrite:
        raise ValueError(
            "`resume=True` continues the run in `out` and `overwrite=True` replaces it: pick one"
        )
    if resume:
        if not (out / "last.pt").is_file():
            raise ValueError(
                f"nothing to resume in {out}: it has no last.pt; drop `resume=True` to start a new "
                "run"
            )
        saved = load_checkpoint(out / "last.pt")["config"]
        changed = [k for k in _differences(saved, cfg) if k not in _RESUMABLE_CHANGES]
        if changed:
            raise ValueError(
                f"`resume=True`: the config differs from the run in {out} at "
                f"{', '.join(changed[:5])}; resume with the run's config, or train into another "
                "`out`"
            )
        return
    if existing and not overwrite:
        raise ValueError(
            f"{out} already holds a training run ({', '.join(existing)}); pass `resume=True` to "
            "continue it, `overwrite=True` to replace it, or choose another `out`"
        )
    check_writable(out, "the run")


def set_aside_old_run(out: Path) -> Path | None:
    """Move the run files of an earlier run in ``out`` into a hidden folder, from which
    :func:`_restore_old_run` puts them back if the new run fails before its first epoch ends."""
    names = [n for n in (*RUN_FILES, "tensorboard") if (out / n).exists()]
    if not names:
        return None
    aside = Path(tempfile.mkdtemp(prefix=f".replaced.seglab-{owner_tag()}-", dir=out))
    with deferred():
        for name in names:
            (out / name).rename(aside / name)
    return aside


def _recover_old_run(out: Path) -> None:
    """An ``--overwrite`` run killed outright (SIGKILL) before its first epoch was written left
    the earlier run set aside: put it back. Once the new run has a checkpoint, it has replaced
    the old one and the aside folder is removed with the other stale temporaries."""
    for aside in stale_temporaries(out):
        if aside.is_dir() and aside.name.startswith(".replaced.seglab-"):
            if not any((out / n).exists() for n in ("last.pt", "best.pt")):
                for name in RUN_FILES:
                    (out / name).unlink(missing_ok=True)
                restore_old_run(out, aside)


def restore_old_run(out: Path, aside: Path) -> None:
    """Put the earlier run set aside in ``aside`` back into ``out``."""
    with deferred():
        for name in (*RUN_FILES, "tensorboard"):
            if (aside / name).exists():
                if (out / name).is_dir():
                    shutil.rmtree(out / name)
                (aside / name).replace(out / name)
        shutil.rmtree(aside, ignore_errors=True)
