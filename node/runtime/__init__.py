"""What every role shares while the node runs: background tasks, Prometheus metrics, and the
one JSON error shape of every HTTP listener. May import only ``hashmesh.protocol``.
"""
