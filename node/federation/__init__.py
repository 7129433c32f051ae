"""Peers: pulling their logs, signing and checking node-to-node requests, what may be sent or
kept, the peer routes, and reloading ``peers.toml``.

It sees the node it runs in only through ``interface.LocalNode`` (the service implements it),
so it never imports the service. May import the store, config, runtime and protocol; not
``matching``, its sibling.
"""
