"""Talking to Proxmox VE: register clusters from Git, cross-check VM NICs, show what is registered.

* ``client.ProxmoxClient`` wraps proxmoxer (https backend) and turns every failure into one of the
  typed errors in ``errors`` (a ``reason`` for CR status conditions, the HTTP status and reason
  phrase when there is one, and a message that never contains a credential).
* ``credentials`` reads a cluster's Secrets (token or user/password, CA bundle).
* ``registration.register_clusters`` verifies due clusters once per cycle; the status it calls for
  is written by the report stage with the rest (``write=False``).
* ``crosscheck`` compares the MACs nodes declare with their VMs' ``netN`` devices (``vmnics``).
* ``api.handle`` (read-only HTTP API) and ``cli`` (``reconciler clusters list|get``) show the CRs.
"""
