"""Source stage: a config repo (local path or Git remote) -> a checked-out revision on disk.

Contract: a ``Checkout`` is a directory holding exactly one revision, fully written before it is
returned; ``revision`` is the commit (or None for a plain directory). Nothing here reads YAML.

``local.open_directory`` reads a directory as it is; ``git.GitSource`` follows a remote (cached
shallow clone, ``ls-remote`` polls, one exported tree per config revision, commits touching only
``status/`` ignored); ``gitcmd`` runs git with credentials kept out of URLs, files and messages.
"""
