"""Reliability suite: CI sizes by default; the long forms with ``RELIABILITY_FULL=1`` (or ``--run-slow``).

Each test prints its figures and writes them as JSON under ``reliability_reports`` (a folder in pytest's
temporary directory, named in the output), so a CI job can keep them as artifacts.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    with contextlib.suppress(ValueError):  # another conftest may have registered it already
        parser.addoption("--run-slow", action="store_true", default=False, help="run the long (full-size) forms")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--run-slow", default=False):
        os.environ["RELIABILITY_FULL"] = "1"  # read by tests/reliability/support.py at import


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the JSON figures go: ``RELIABILITY_REPORTS`` if set, else a session temporary folder."""
    configured = os.environ.get("RELIABILITY_REPORTS")
    return Path(configured) if configured else tmp_path_factory.mktemp("reliability_reports")
