"""Dagster assets, one module per subject; thin functions over ``pipelines.ingest`` and ``pipelines.reporting``."""
