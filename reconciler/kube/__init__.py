"""Everything Kubernetes-shaped that is not I/O: CRD manifests generated from the contract,
the live objects' names, labels and annotations, and the status schema.

The only module here that imports the ``kubernetes`` client is ``client.py`` (the adapter);
``crds.py`` and ``objects.py`` are pure.
"""
