"""A throw-away CA per sandbox run (trustme) and the server's TLS context."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerTls:
    context: ssl.SSLContext
    ca_file: Path  # PEM of the CA that signed the server certificate
    ca_pem: bytes
    fingerprint: str = ""  # SHA-256 of the server certificate, AA:BB:... as PVE shows it


def make_server_tls(directory: Path, hostnames: Sequence[str]) -> ServerTls:
    import trustme  # test dependency: imported only when a sandbox starts

    ca = trustme.CA(organization_name="multinic-reconciler PVE sandbox")
    cert = ca.issue_cert(*hostnames)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = directory / "pve-sandbox-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    return ServerTls(context=context, ca_file=ca_file, ca_pem=ca.cert_pem.bytes(), fingerprint=fingerprint)
