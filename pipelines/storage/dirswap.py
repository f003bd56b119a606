"""Replace a whole folder in one step, so that a reader listing it sees the old files or the new ones, never both
and never neither.

Linux can swap two paths atomically: ``renameat2(..., RENAME_EXCHANGE)`` (kernel 3.15+, glibc 2.28+; ext4, xfs,
btrfs, tmpfs and most local filesystems). Python's ``os`` module does not expose it, so it is called through
``ctypes``. Where it is unavailable (another OS, an old libc, a filesystem that refuses it) ``swap_directory``
falls back to two ordinary renames, live -> retired then staged -> live: each is atomic, but between them (a few
microseconds) the folder is absent, so a reader may see neither; a crash between them is rolled forward by the
caller's recovery (see ``compaction.recover_staging``). The mode used is returned so that callers can report it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
from typing import Any, Literal

log = logging.getLogger(__name__)

SwapMode = Literal["exchange", "rename"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1
# errno values meaning "this kernel, libc or filesystem cannot exchange", as opposed to a real failure
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}


class ExchangeUnavailable(OSError):
    """``renameat2(RENAME_EXCHANGE)`` cannot be used here; nothing was changed."""


def _renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def exchange(a: str, b: str) -> None:
    """Swap the two existing paths ``a`` and ``b`` in one atomic step; ExchangeUnavailable when impossible here."""
    if _RENAMEAT2 is None:
        raise ExchangeUnavailable(errno.ENOSYS, "renameat2 is not available in this C library")
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code in _UNSUPPORTED:
            raise ExchangeUnavailable(code, f"RENAME_EXCHANGE refused: {os.strerror(code)}", a)
        raise OSError(code, os.strerror(code), a, None, b)


def swap_directory(staged: str, live: str, retired: str, *, mode: SwapMode | None = None) -> SwapMode:
    """Put the folder ``staged`` at ``live``; the previous ``live`` ends up at ``retired`` (delete it afterwards).

    ``mode`` None tries the atomic exchange first and falls back to two renames (logged); "rename" forces the
    fallback (tests, or filesystems known to refuse the exchange). All three paths must be on one filesystem.
    """
    if os.path.lexists(retired):
        raise FileExistsError(errno.EEXIST, "the retired path must not exist yet", retired)
    if mode in (None, "exchange"):
        try:
            exchange(staged, live)
        except ExchangeUnavailable as exc:
            if mode == "exchange":
                raise
            log.warning("atomic folder exchange unavailable (%s): replacing %s with two renames", exc, live)
        else:
            os.rename(staged, retired)  # the old files, now at the staged path, leave under the retired name
            fsync_directory(os.path.dirname(live))
            fsync_directory(os.path.dirname(retired))
            return "exchange"
    os.rename(live, retired)
    os.rename(staged, live)
    fsync_directory(os.path.dirname(live))
    fsync_directory(os.path.dirname(retired))
    return "rename"


def fsync_directory(folder: str) -> None:
    """Make renames and new entries in ``folder`` durable, not only the files' bytes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: str) -> None:
    """Delete a retired or staging folder (gone already is fine: a second cleanup after a crash)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
