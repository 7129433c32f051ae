"""Reading what the operator wrote: ``node.toml``, ``peers.toml``, key files, the node's identity.

Everything is validated at load into frozen dataclasses, with errors that name the file and
field. May import only ``hashmesh.protocol``.
"""
