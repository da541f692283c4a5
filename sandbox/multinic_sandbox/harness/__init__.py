"""Where the product meets the sandboxes: the simulated fleet (Nodes whose Jobs run the real
agent), PVE topologies built from a config repo, Kubernetes set-up (CRDs, namespace, Secrets),
pytest fixtures joining both, and ``reconciler demo``.

Only this sub-package imports ``reconciler``, and only its public stages (config models, the
apply stage, the agent); the servers in ``multinic_sandbox.kube`` and ``multinic_sandbox.proxmox``
import nothing of the product (an import-linter contract).
"""
