"""The ``hashmesh`` command line: offline commands on files, and a client for the local API.

``main`` imports a command's module only when that command runs, so ``--help`` and the
commands that only talk to a running node start without numpy, PIL, numba or aiohttp. The top
layer: may import anything below, and nothing imports it.
"""
