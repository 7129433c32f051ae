"""Adapters that let other tools use a node: ``pytx`` is a python-threatexchange extension
(for the ``threatexchange`` CLI, HMA and Coop). They talk to the node over its local API, as
any client would, so they sit above every other layer and import only the API client."""
