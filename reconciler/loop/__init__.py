"""The running reconciler (``reconciler run``): poll or webhook -> one pipeline cycle -> report,
under a Lease so that of several replicas exactly one acts.

``leader`` (Lease election), ``server`` (HTTP: health, readiness, metrics, webhook, read API),
``metrics`` (Prometheus registry), ``logs`` (structured logging), ``runner`` (the loop),
``cli`` (flags and env).
"""
