"""From image to hashes to answers: the hasher, the in-memory index, its compiled kernels, and
the match path (lookups, provenance, expiry) that the node and its match workers share.

May import the store, config, runtime and protocol; not ``federation``, its sibling. numpy,
numba, PIL and pdqhash are imported here and nowhere above.
"""
