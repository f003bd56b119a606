"""Shared fixtures: a real simulator over HTTP and a real PostgreSQL server, loaded as plugins."""

pytest_plugins = ["tests.fixtures.simulator", "tests.fixtures.postgres"]
