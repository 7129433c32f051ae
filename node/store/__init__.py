"""The node's database behind one interface (``interface.py``: ``NodeStore``, ``open_store``)
and two backends: the embedded SQLite store (``sqlite.py``, the default; exact signed bytes,
derived tables, one writer, reads off the event loop) and PostgreSQL (``postgres.py``, which
runs the same SQL through ``pg_dialect.py``). Also: the SQLite schema and the migration
between schema versions, the checked copy into PostgreSQL (``port.py``), and the signer lease
and change feed of a node served by several processes (``cluster.py``). May import config,
runtime and protocol.
"""
