"""Config stage: read a config-repo checkout into validated, typed desired state.

Contract: ``validation.validate_repo(path)`` never raises for bad input and never touches the
network or the cluster. It returns every problem as a ``Diagnostic`` naming file, line, column and
field, plus the ``DesiredState`` built from the documents that passed. A file that fails is listed
as *blocked*: later stages neither change nor delete its live object.

Modules: ``documents`` (safe YAML with positions), ``repo`` (which files are desired state),
``schemas`` (the JSON Schema contract), ``models`` (one pydantic model per kind), ``crossfile``
(rules no schema can express), ``validation`` (the composition), ``formats`` (output for people
and CI systems).
"""
