"""A run's dead letters in brief: how many per endpoint, and the first error (secrets were removed when stored).

Shared by the run-health check and the failure of ``snapshot_run``, so that what an operator reads in the check's
metadata, in the failed run and in the alert names the same cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from pipelines.storage import schema
from pipelines.storage.warehouse import Warehouse

FIRST_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class DeadLetters:
    by_endpoint: dict[str, int]
    first_error: str | None


def dead_letters_of(warehouse: Warehouse, snapshot_id: str) -> DeadLetters:
    errors = schema.TABLES["ingest_error"]
    of_run = errors.c.snapshot_id == snapshot_id
    with warehouse.engine.connect() as conn:
        by_endpoint = conn.execute(
            sa.select(errors.c.endpoint, sa.func.count())
            .where(of_run)
            .group_by(errors.c.endpoint)
            .order_by(errors.c.endpoint)
        ).all()
        first = conn.execute(
            sa.select(errors.c.error).where(of_run).order_by(errors.c.at, errors.c.error_id).limit(1)
        ).scalar_one_or_none()
    return DeadLetters(
        by_endpoint={endpoint: count for endpoint, count in by_endpoint},
        first_error=first[:FIRST_ERROR_CHARS] if first else None,
    )
