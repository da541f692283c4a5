"""Report stage: what happened, written where users look.

``status`` is the one status writer: each object's status is computed once per cycle from all the
cycle learned and written with one patch (only when its content changed), with Events on
transitions (``events`` builds them, with the object's uid);
``gitstatus`` renders the ``status/`` files committed back to the config repo.
"""
