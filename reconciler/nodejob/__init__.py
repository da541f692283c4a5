"""The contract between the controller and the node agent: what a node Job carries and returns.

Both sides import this package and nothing of each other: the controller builds Jobs from it
(``reconciler.kube.jobs``), the agent (``reconciler.agent``) reads its input and writes its result
with it.

* ``result`` - ``AgentResult``, the agent's termination message, parsed by the rollout.
"""
