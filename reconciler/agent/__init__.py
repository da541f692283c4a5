"""Node agent: turn one ``MultiNicNodeConfig`` into network config files on this node.

Contract (``reconciler agent apply|remove``, run by the per-node Job):

* input is the node document (``--config FILE|-`` or env ``MULTINIC_CONFIG``), checked against the
  JSON Schema and built into ``reconciler.config.models.NodeConfig``;
* output is files under ``--config-root`` (default ``--root``, default ``/``) in the format the Job
  names (``--renderer``; else the one OS selection, ``reconciler.nodejob.renderers.select``): one
  netplan file on Ubuntu/Debian, ifcfg + route files on RHEL 7/8, NetworkManager keyfiles + ``.link``
  files on RHEL 9+. Every file carries ``MARKER``; files without it are never changed or removed;
* the files are checked and activated by the node's own stack (netplan's D-Bus service, or
  NetworkManager through ``nmcli`` over the host's D-Bus socket; ``iproute2`` only as an explicit
  fallback), then verified against the kernel and probed;
* all or nothing: any failure once the agent has started on the NICs (a NIC not found, a write,
  validation, activation, verification, a probe) restores every file and the previous live state
  (outcome ``rolled-back``, ``step`` names where it stopped); unchanged files and a verified live
  state mean no write and no activation;
* the result is one JSON object (``result.AgentResult``, < 4096 bytes) on stdout and in
  ``/dev/termination-log``; exit 0 applied/unchanged, 1 interface failures, 2 bad input;
* the agent never talks to the Kubernetes API.

Modules: ``osdetect`` (os-release → renderer), ``devices`` (MAC → device via sysfs), ``render_*``
(one per file format), ``files`` (marker, atomic writes, backups), ``activate`` (netplan, nmcli,
iproute2, command, none), ``verify`` (live state checks), ``engine`` (the apply/remove flow),
``probe`` (per-interface pings), ``result`` (the JSON result, in ``reconciler.nodejob``), ``cli``
(flags).
"""

MARKER = "# managed by multinic-reconciler"
