"""Source stage: a config repo (local path or Git remote) -> a checked-out revision on disk.

Contract: a ``Checkout`` is a directory holding exactly one revision, fully written before it is
returned; ``revision`` is the commit (or None for a plain directory). Nothing here reads YAML.
"""
