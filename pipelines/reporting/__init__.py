"""Reporting: the SQL views of ``sql/views`` on SQLite, PostgreSQL and DuckDB over Parquet (``views``), one UTC
day of them as Arrow tables (``daily``), and the offline HTML dashboard (``dashboard``). See docs/reporting.md."""
