"""Wire-level test servers: a Kubernetes API server and a Proxmox VE API server.

They speak the real protocols over real HTTP(S) to the real client libraries (the official
``kubernetes`` client, ``kubectl``, ``proxmoxer``) and reject what the real servers would reject,
so that tests and ``reconciler demo`` exercise our code without a cluster. Nothing outside
``sandbox/`` and ``tests/`` imports this package, except the demo.
"""
