"""Node agent: turn one ``MultiNicNodeConfig`` into network config files on this node.

Contract (``reconciler agent apply|remove``, run by the per-node Job):

* input is the node document (``--config FILE|-`` or env ``MULTINIC_CONFIG``), checked against the
  JSON Schema and built into ``reconciler.config.models.NodeConfig``;
* output is files under ``--config-root`` (default ``--root``, default ``/``): one netplan file on
  Ubuntu/Debian, ifcfg + route files on RHEL 7/8, NetworkManager keyfiles on RHEL 9+. Every file
  carries ``MARKER``; files without it are never changed or removed;
* unchanged content means no write and no activation; a failed activation or verification restores
  the previous files (and, for iproute2, the previous live state) and re-activates;
* the result is one JSON object (``result.AgentResult``, < 4096 bytes) on stdout and in
  ``/dev/termination-log``; exit 0 applied/unchanged, 1 interface failures, 2 bad input;
* the agent never talks to the Kubernetes API.

Modules: ``osdetect`` (os-release → renderer), ``devices`` (MAC → device via sysfs), ``render_*``
(one per file format), ``files`` (marker, atomic writes, backups), ``activate`` (netplan, nmcli,
iproute2, command, none), ``verify`` (live state checks), ``engine`` (the apply/remove flow),
``result`` (the JSON result), ``cli`` (flags).
"""

MARKER = "# managed by multinic-reconciler"
