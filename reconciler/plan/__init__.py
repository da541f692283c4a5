"""Plan stage: desired state (from Git) vs live objects -> a ``ChangeSet``.

Pure: no I/O. Live state reaches the planner as plain ``LiveObject`` values, so every rule here
(create/update/delete/unchanged/blocked, drift, the prune guard) is testable without a cluster.
The same ``ChangeSet`` is what apply executes and what report prints.
"""
