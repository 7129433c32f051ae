"""The running node, installed as ``hashmesh.node``; one subpackage per role.

Imports flow one way, top to bottom (``tests/test_layering.py`` holds it)::

    interop     adapters for other tools over the local API: the python-threatexchange
                extension (``interop.pytx``, for the threatexchange CLI and HMA)
    cli         the ``hashmesh`` command line and its client for the local API
    api         HTTP: local routes, request parsing, OpenAPI, app wiring, the server,
                the match workers that serve the match routes on a port of their own
    service.py  the node's verbs: add, revoke, feedback, match, status
    reporting   the transparency report: aggregates of a period from the store, drawn as
                one self-contained HTML page (beside the service: reads store and config,
                applies matching's dispute rules; never imports the service)
    cases       a person's case: its records, reached with a reference and PIN (kept only
                as an HMAC and an argon2id hash), its status, withdrawal and review queue
    federation  peers: pulling logs, signed requests, send/keep policy, the peer routes,
                reloading peers.toml; it sees the service only as ``LocalNode``
    matching    image -> hashes, the in-memory index and its compiled kernels, match answers
    store       the store interface and its SQLite and PostgreSQL backends, schema, migration,
                the signer lease and change feed of a node on several processes
    config      node.toml, peers.toml, the TOML reader, key files, the node's identity
    runtime     what every role shares while running: background tasks, metrics, the error
                shape of every HTTP listener
    ...         hashmesh.protocol: the pure wire format (the repository's ``protocol/``)

A module may import its own package and any layer below; never a layer above, nor a sibling
of the same rank (``cases``, ``federation`` and ``matching``; ``service`` and ``reporting``;
``config`` and ``runtime``).
"""
