"""Operations that keep an unattended deployment bounded.

Dagster run pruning, Parquet compaction, retention and dead-letter replay.
"""
