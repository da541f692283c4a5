"""multinic-reconciler: Git is the source of truth for the extra NICs of Kubernetes nodes on Proxmox VE.

The package is a pipeline of small stages, each a folder with its own contract:

    source/  -> config/ -> plan/ -> apply/ -> report/
    (Git)      (load,     (ChangeSet)  (kube, jobs,  (CR status,
                validate)               proxmox)      status/ in Git)

``agent/`` is the node side (renders and activates netplan/ifcfg/keyfiles) and
``sandbox/`` holds the wire-level Kubernetes and Proxmox VE servers used by tests and the demo.
``cli.py`` is the composition root.
"""

__version__ = "0.1.0"
