"""Serving requests: the one serving flow, routes, the router that drives the flow against a
store, probes, cool-downs, the ledger and the certificates.
"""

__all__: list[str] = []
