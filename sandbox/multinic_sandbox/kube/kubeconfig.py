"""Kubeconfig files and TLS material for a running sandbox."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from pathlib import Path

import yaml

CONTEXT = "kube-sandbox"


@dataclass
class Tls:
    """A throw-away CA (trustme) and a server certificate for 127.0.0.1/localhost."""

    context: ssl.SSLContext
    ca_pem: bytes

    @classmethod
    def create(cls, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> Tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert(*hosts)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return cls(context, ca.cert_pem.bytes())


def kubeconfig(url: str, ca_pem: bytes | None = None, token: str | None = None,
               namespace: str = "default") -> dict[str, object]:
    cluster: dict[str, object] = {"server": url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    # kubectl prompts for a username over HTTPS without credentials; any token is accepted
    user: dict[str, object] = {"token": token or "kube-sandbox"}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT,
                                                   "namespace": namespace}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str, ca_pem: bytes | None = None,
                     token: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url, ca_pem, token), sort_keys=False))
    path.chmod(0o600)
    return path
