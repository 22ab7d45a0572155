"""Files written safely: atomically, with the user's umask, under names that tell which process
wrote them, so that the temporaries of a process that died can be found and cleaned; and OS
errors in words a user can act on. :mod:`seglab.io` re-exports all of it."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def describe_os_error(exc: OSError) -> str:
    """One line for an operating-system error, in words a user can act on: what happened
    (``strerror``: read-only file system, no space left on device, ...) and the path."""
    import errno

    advice = {
        errno.EROFS: "; choose an `out` on a writable file system",
        errno.ENOSPC: "; free some space or choose an `out` on another disk",
        errno.EDQUOT: "; free some space or choose an `out` on another disk",
        errno.ENOTDIR: "; a part of the path is a file, not a folder",
        errno.EACCES: "; choose a folder you can write to",
        errno.EPERM: "; choose a folder you can write to",
        errno.EISDIR: "; expected a file, found a folder",
        errno.EEXIST: "; move it away or choose another name",
    }.get(exc.errno or -1, "")
    what = (exc.strerror or type(exc).__name__).lower()
    where = f": {exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    if not exc.strerror and exc.args:
        what = " ".join(str(exc).split())
    return f"{what}{where}{advice}"


def check_writable(out: str | os.PathLike, what: str = "results") -> Path:
    """Fail now, not after the work, when the folder ``out`` cannot be written: a file in its
    place or on its path, a read-only file system, no permission. Creates it (and removes it
    again if the check fails)."""
    import shutil

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out` {out} is a file; {what} go into a folder: choose another `out`")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".probe.seglab-{owner_tag()}.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if created:
            shutil.rmtree(created[-1], ignore_errors=True)
        raise ValueError(f"cannot write {what} into {out}: {describe_os_error(exc)}") from None
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    return atomic_write(path, lambda f: f.write(data))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions ``open()`` gives a new file: 0666 less the user's umask."""
    return 0o666 & ~_umask()


def owner_tag() -> str:
    """``host-pid``: marks temporary files and folders with the process that made them."""
    return f"{socket.gethostname().replace('-', '_')}-{os.getpid()}"


_TAGGED = re.compile(r"^\..*\.seglab-(?P<host>[^-]+)-(?P<pid>\d+)[.-]")


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporary files and staging folders in ``folder`` whose writer, a seglab process of
    this host, is no longer running. Those of other hosts or of live processes are not listed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host = socket.gethostname().replace("-", "_")
    found = []
    for entry in folder.iterdir():
        m = _TAGGED.match(entry.name)
        if m and m["host"] == host and not _alive(int(m["pid"])):
            found.append(entry)
    return found


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and staging folders in ``folder`` left by seglab processes of
    this host that are no longer running (a kill mid-write); returns what was removed. A staging
    folder that still holds results set aside (``.replaced-*``, see
    :func:`seglab.batch.recover_staging`) is never removed: it is someone's earlier work."""
    import shutil

    removed: list[Path] = []
    for entry in stale_temporaries(folder):
        if entry.is_dir():
            if any(e.name.startswith(".replaced-") for e in entry.iterdir()):
                continue
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def atomic_write(path: str | os.PathLike, writer: Callable[[Any], object]) -> Path:
    """Call ``writer(binary_file)`` on a temporary file, then rename it to ``path``; the file gets
    the permissions ``open()`` would give it (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.seglab-{owner_tag()}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
