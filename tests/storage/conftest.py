"""Fixtures of the storage tests."""

from collections.abc import Iterator

import pytest

from pipelines.storage.warehouse import Warehouse


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Warehouse]:
    """A migrated warehouse on each backend of ``warehouse_url`` (SQLite, and PostgreSQL where it runs)."""
    warehouse = Warehouse(warehouse_url)
    warehouse.migrate()
    yield warehouse
    warehouse.dispose()
