"""The node's database: the SQLite store (exact signed bytes, derived tables, one writer,
reads off the event loop), its schema and the migration between schema versions.

A second backend (PostgreSQL) goes here, behind the interface the SQLite store defines. May
import config, runtime and protocol.
"""
