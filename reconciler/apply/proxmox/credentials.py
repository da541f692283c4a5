"""Credentials and TLS trust for one ``ProxmoxCluster``, read from Kubernetes Secrets.

The cluster file only *names* Secrets; their values are read here, handed straight to
``ProxmoxClient`` and never stored, logged or put into a message. A missing Secret or key becomes
``CredentialsMissing`` naming the Secret and the keys we expected.

Credentials Secret keys: ``tokenId`` + ``tokenSecret`` (preferred), else ``username`` + ``password``.
CA bundle: ``spec.tls.caBundleSecretRef`` (key ``ca.crt`` unless given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.apply.proxmox.client import ProxmoxClient
from reconciler.apply.proxmox.errors import CredentialsMissing
from reconciler.config.models import ProxmoxCluster

TOKEN_KEYS = ("tokenId", "tokenSecret")
LOGIN_KEYS = ("username", "password")

# ``Kube.read_secret``: decoded data of a Secret in the target namespace, None when absent.
SecretReader = Callable[[str], "dict[str, bytes] | None"]
ClientFactory = Callable[..., ProxmoxClient]


@dataclass(frozen=True)
class ClusterCredentials:
    """What ``ProxmoxClient`` needs; secret fields are kept out of ``repr``."""

    token_id: str | None = None
    token_secret: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_bundle: bytes | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False

    @property
    def auth_kind(self) -> str:
        return "token" if self.token_id else "ticket"

    def client_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"ca_bundle": self.ca_bundle, "insecure_skip_verify": self.insecure_skip_verify}
        if self.token_id:
            kwargs.update(token_id=self.token_id, token_secret=self.token_secret)
        else:
            kwargs.update(username=self.username, password=self.password)
        return kwargs


def _text(data: dict[str, bytes], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace").strip()
    return text or None


def _reader(read_secret: SecretReader) -> SecretReader:
    """A failing Secret read (e.g. 403 Forbidden) is reported like a missing Secret, with the cause."""

    def read(name: str) -> dict[str, bytes] | None:
        try:
            return read_secret(name)
        except Exception as exc:  # KubeError: its message is the apiserver's, never Secret data
            raise CredentialsMissing(f"cannot read Secret {name}: {exc}") from None

    return read


def read_credentials(read_secret: SecretReader, cluster: ProxmoxCluster) -> ClusterCredentials:
    """Read the credentials (and CA bundle) of ``cluster``; ``CredentialsMissing`` if incomplete."""
    read_secret = _reader(read_secret)
    spec = cluster.spec
    secret_name = spec.credentials_secret_ref.name
    data = read_secret(secret_name)
    expected = f"keys {' + '.join(TOKEN_KEYS)} or {' + '.join(LOGIN_KEYS)}"
    if data is None:
        raise CredentialsMissing(
            f"Secret {secret_name} (spec.credentialsSecretRef) does not exist; create it with {expected}"
        )
    token_id, token_secret = _text(data, "tokenId"), _text(data, "tokenSecret")
    username, password = _text(data, "username"), _text(data, "password")
    if token_id and token_secret:
        creds = ClusterCredentials(token_id=token_id, token_secret=token_secret)
    elif username and password:
        creds = ClusterCredentials(username=username, password=password)
    else:
        present = ", ".join(sorted(k for k in data if k in (*TOKEN_KEYS, *LOGIN_KEYS))) or "none of them"
        raise CredentialsMissing(f"Secret {secret_name} needs {expected} (present: {present})")

    ca_bundle: bytes | None = None
    ref = spec.tls.ca_bundle_secret_ref
    if ref is not None and not spec.tls.insecure_skip_verify:
        ca_data = read_secret(ref.name)
        if ca_data is None:
            raise CredentialsMissing(
                f"Secret {ref.name} (spec.tls.caBundleSecretRef) does not exist; create it with key {ref.key}"
            )
        ca_bundle = ca_data.get(ref.key)
        if not ca_bundle:
            keys = ", ".join(sorted(ca_data)) or "none"
            raise CredentialsMissing(f"Secret {ref.name} has no key {ref.key} for the CA bundle (keys: {keys})")
    return ClusterCredentials(
        token_id=creds.token_id,
        token_secret=creds.token_secret,
        username=creds.username,
        password=creds.password,
        ca_bundle=ca_bundle,
        insecure_skip_verify=spec.tls.insecure_skip_verify,
    )


def client_for(
    cluster: ProxmoxCluster,
    credentials: ClusterCredentials,
    *,
    client_factory: ClientFactory = ProxmoxClient,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> ProxmoxClient:
    """A client for ``cluster`` (``ConfigurationError`` if the values cannot work)."""
    return client_factory(
        cluster.spec.api_endpoint,
        **credentials.client_kwargs(),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
