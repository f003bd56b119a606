"""Storage: the SQL warehouse (SQLite or PostgreSQL) and the Parquet files, both in the data contract's shape."""
