"""Many images, many processes: finding the inputs, sharing them out, writing results safely.

``seglab segment``, ``predict`` and ``compare`` take files, folders and glob patterns
(:func:`find_images`), decode one image at a time, and under ``torchrun`` each process takes every
``WORLD_SIZE``-th image from its ``RANK`` (:func:`shard`), so a folder is spread over processes and
machines with each image written exactly once. :class:`OutputBatch` writes each image's results
into a staging folder and moves it into place only when complete, so a result folder is either
whole or absent; ``skip_existing`` resumes a batch that stopped. When a run fails it removes only
what it wrote itself and puts back any earlier results it was replacing.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ._signals import deferred
from .io import owner_tag, remove_stale_temporaries, stale_temporaries

#: File endings taken from folders and glob patterns.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def find_images(inputs: Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """The image files that ``inputs`` name: files as given, folders (their images, sorted by
    name; sub-folders too with ``recursive``) and glob patterns (``"scans/*.tif"``, sorted).
    Only paths are listed: nothing is decoded.

    Raises
    ------
    FileNotFoundError
        An input that does not exist, or a folder or pattern with no image in it.
    ValueError
        Two images with the same name (their result folders would collide).
    """
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise FileNotFoundError(
                    f"no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {path}"
                )
            found += files
        elif path.exists():
            found.append(path)
        elif glob.has_magic(text):
            files = sorted(
                Path(p)
                for p in glob.iglob(text, recursive=recursive)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise FileNotFoundError(f"no image file matches {text!r}")
            found += files
        else:
            raise FileNotFoundError(f"image file not found: {path}")
    seen: dict[str, Path] = {}
    for p in found:
        if p.stem in seen and seen[p.stem] != p:
            raise ValueError(
                f"several input images share the name {p.stem!r} ({seen[p.stem]}, {p}); their "
                "outputs would collide"
            )
        seen[p.stem] = p
    return list(dict.fromkeys(found))


def process_group() -> tuple[int, int]:
    """(rank, world size) of this process: from ``torchrun``'s ``RANK`` and ``WORLD_SIZE``
    environment variables, else (0, 1)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise ValueError("RANK and WORLD_SIZE must be integers (as torchrun sets them)") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE {world})")
    return rank, world


def shard(items: list, rank: int | None = None, world: int | None = None) -> list:
    """This process's share of ``items``: every ``world``-th item from ``rank`` (default: from
    :func:`process_group`). The shares of all ranks are disjoint and cover every item."""
    if rank is None or world is None:
        rank, world = process_group()
    return items[rank::world]


class OutputBatch:
    """Writes per-item result folders ``out/<name>/`` so that each is whole or absent.

    Use as a context manager::

        with OutputBatch("results", skip_existing=True) as batch:
            for path in paths:
                if batch.done(path.stem):
                    continue
                folder = batch.stage(path.stem)   # an empty folder to write into
                ...                               # write the results there
                batch.commit(path.stem)           # moved into place, atomically

    If the block raises (an error, Ctrl-C, or SIGTERM/SIGHUP under
    :func:`seglab._signals.handle_termination`), the folders committed by this batch are removed
    again and the earlier results they replaced are put back (with ``keep_on_error``, as
    ``skip_existing`` implies, finished items are kept so that a rerun can skip them). A staging
    folder left by a process of this host that died without cleaning up (SIGKILL, a power cut) is
    recovered on entry: the results it had set aside are put back, then it is removed.
    """

    def __init__(self, out: str | os.PathLike, skip_existing: bool = False, keep_on_error=None):
        self.out = Path(out)
        self.skip_existing = skip_existing
        self.keep_on_error = skip_existing if keep_on_error is None else keep_on_error
        self.written: list[Path] = []
        self.skipped = 0
        self._replaced: dict[Path, Path] = {}
        self._staging: Path | None = None
        self._created_out = False

    def __enter__(self) -> OutputBatch:
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"`out` {self.out} exists and is not a folder; choose a folder")
        self._created_out = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            recover_staging(self.out)
            remove_stale_temporaries(self.out)
            self._staging = Path(
                tempfile.mkdtemp(prefix=f".staging.seglab-{owner_tag()}-", dir=self.out)
            )
            if self.keep_on_error:
                (self._staging / _KEEP_MARK).touch()
        except PermissionError:
            raise ValueError(
                f"cannot write into {self.out}: permission denied; choose another `out`"
            ) from None
        return self

    def done(self, name: str) -> bool:
        """Whether ``name`` is to be skipped: ``skip_existing`` and its folder exists."""
        if self.skip_existing and (self.out / name).exists():
            self.skipped += 1
            return True
        return False

    def stage(self, name: str) -> Path:
        """An empty folder in which to write ``name``'s results."""
        assert self._staging is not None, "use OutputBatch as a context manager"
        dest = self.out / name
        if (dest.exists() or dest.is_symlink()) and not dest.is_dir():
            raise ValueError(
                f"{dest} exists and is not a result folder; move it away or choose another `out`"
            )
        folder = self._staging / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def commit(self, name: str) -> Path:
        """Move ``name``'s staged results to ``out/<name>`` (an earlier result is kept aside
        until the batch ends well). A termination signal waits until both renames are done."""
        assert self._staging is not None, "use OutputBatch as a context manager"
        dest = self.out / name
        with deferred():
            if dest.exists() or dest.is_symlink():
                aside = self._staging / f"{_REPLACED}{name}"
                dest.rename(aside)
                self._replaced[dest] = aside
            (self._staging / name).rename(dest)
            self.written.append(dest)
        return dest

    def __exit__(self, exc_type, exc, tb) -> None:
        with deferred():  # a second signal must not cut the restoring short
            if exc_type is not None and not self.keep_on_error:
                for dest in reversed(self.written):
                    shutil.rmtree(dest, ignore_errors=True)
                    if dest in self._replaced:
                        self._replaced[dest].rename(dest)
                self.written.clear()
            if self._staging is not None:
                shutil.rmtree(self._staging, ignore_errors=True)
            if exc_type is not None and self._created_out:
                try:
                    self.out.rmdir()  # only if empty: another run may be writing there
                except OSError:
                    pass


_REPLACED = ".replaced-"
_KEEP_MARK = ".keep-on-error"


def recover_staging(out: str | os.PathLike) -> list[Path]:
    """Put back the results that dead processes of this host had set aside in their staging
    folders in ``out`` (a run killed by SIGKILL while replacing earlier results); returns the
    result folders restored. The staging folders themselves are left for
    :func:`~seglab.io.remove_stale_temporaries`, now that nothing in them is anyone's result."""
    out = Path(out)
    restored: list[Path] = []
    for staging in stale_temporaries(out):
        if not staging.is_dir():
            continue
        keep_new = (staging / _KEEP_MARK).exists()  # as that run would have ended
        for aside in sorted(staging.glob(f"{_REPLACED}*")):
            if keep_new:
                shutil.rmtree(aside)
                continue
            dest = out / aside.name[len(_REPLACED) :]
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)  # the dead run's new result for this image
            elif dest.exists() or dest.is_symlink():
                continue  # not ours to remove; the old result stays in staging
            aside.rename(dest)
            restored.append(dest)
    return restored


def run_batch(
    paths: list[Path],
    out: str | os.PathLike,
    write: Callable[[Path, Path], object],
    *,
    skip_existing: bool = False,
    progress: bool = False,
    desc: str = "images",
) -> OutputBatch:
    """Call ``write(path, folder)`` for each path into ``out/<stem>/`` through an
    :class:`OutputBatch` (whole folders or none; ``skip_existing`` resumes). Returns the batch:
    ``.written`` and ``.skipped`` say what was done."""
    from tqdm.auto import tqdm

    with OutputBatch(out, skip_existing=skip_existing) as batch:
        for path in tqdm(paths, desc=desc, unit="image", disable=not progress or len(paths) < 2):
            if not batch.done(path.stem):
                write(path, batch.stage(path.stem))
                batch.commit(path.stem)
    return batch
