"""A throw-away CA per sandbox run (trustme) and the server's TLS context."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerTls:
    context: ssl.SSLContext
    ca_file: Path  # PEM of the CA that signed the server certificate
    ca_pem: bytes


def make_server_tls(directory: Path, hostnames: Sequence[str]) -> ServerTls:
    import trustme  # test dependency: imported only when a sandbox starts

    ca = trustme.CA(organization_name="multinic-reconciler PVE sandbox")
    cert = ca.issue_cert(*hostnames)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = directory / "pve-sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ServerTls(context=context, ca_file=ca_file, ca_pem=ca.cert_pem.bytes())
