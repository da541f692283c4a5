"""Talking to Proxmox VE: verify a registered cluster and read VM NICs.

``client.ProxmoxClient`` wraps proxmoxer (https backend) and turns every failure into one of the
typed errors in ``errors`` (a ``reason`` for CR status conditions, the HTTP status and reason
phrase when there is one, and a message that never contains a credential). ``vmnics`` parses
the ``netN`` entries of a VM config and compares them with the NICs a node declares.
"""
