"""A process killed at the worst moment of a folder swap, for the compaction and retention tests."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pipelines.storage import dirswap


@contextmanager
def killed_between_fallback_renames(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside the block, dirswap's second ``os.rename`` is a kill (KeyboardInterrupt), which the block must raise:
    the two-rename fallback stops with the live day renamed away and the new one not yet in place."""
    real_rename = os.rename
    calls = []

    def second_rename_dies(src: str, dst: str) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the fallback's renames")
        real_rename(src, dst)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(dirswap.os, "rename", second_rename_dies)
        yield
