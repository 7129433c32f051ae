"""HTTP for a platform's own services, and the processes that serve it.

Owns the local routes and their request parsing, the OpenAPI document, the app wiring (which
also mounts the federation routes), the server, and the match workers with their pool. May
import the service and everything below it; only the CLI imports this package.
"""
