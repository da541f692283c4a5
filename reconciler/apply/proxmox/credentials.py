"""Credentials and TLS trust for one ``ProxmoxCluster``, read from Kubernetes Secrets.

The cluster file only *names* Secrets; their values are read here, handed straight to
``ProxmoxClient`` and never stored, logged or put into a message. A missing Secret or key becomes
``CredentialsMissing`` naming the Secret and the keys we expected.

Credentials Secret keys: ``tokenId`` + ``tokenSecret`` (preferred), else ``username`` + ``password``.
CA bundle: ``spec.tls.caBundleSecretRef`` (key ``ca.crt`` unless given).

Malformed values are refused *without being echoed*: ``tokenId`` is checked against Proxmox's
token-id grammar (``user@realm!tokenname``), and the message says what shape it has instead (the
single-string ``user@realm!name=secret`` form, swapped fields, a line break), never its value.
``ClusterCredentials.secrets`` lists every value that must never appear in a message (including
every value of the Secret that is not a plain principal name); ``scrubbed`` applies them to a
``ProxmoxError`` before it leaves for status, logs, Events, the read API or Git.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from reconciler import redact
from reconciler.apply.proxmox.client import ProxmoxClient
from reconciler.apply.proxmox.errors import ConfigurationError, CredentialsMissing, ProxmoxError
from reconciler.config.models import ProxmoxCluster

# Proxmox VE (PVE::Auth::Plugin / PVE::AccessControl): user names have no whitespace, ':' or '/';
# realms and token names start with a letter and hold letters, digits, '.', '-' and '_'.
_USER = r"[^\s:/@!=]+"
_REALM = r"[A-Za-z][A-Za-z0-9.\-_]*"
_TOKEN_NAME = r"[A-Za-z][A-Za-z0-9.\-_]*"
TOKEN_ID = re.compile(rf"{_USER}@{_REALM}!{_TOKEN_NAME}")
USER_ID = re.compile(rf"{_USER}@{_REALM}")

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
    secrets: tuple[str, ...] = field(default=(), repr=False)  # values never to be shown
    fingerprint: str | None = None  # spec.tls.fingerprint (not a secret)

    @property
    def auth_kind(self) -> str:
        return "token" if self.token_id else "ticket"

    def client_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"ca_bundle": self.ca_bundle, "insecure_skip_verify": self.insecure_skip_verify}
        if self.fingerprint:
            kwargs["fingerprint"] = self.fingerprint
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


def secret_values(data: dict[str, bytes]) -> tuple[str, ...]:
    """Every value of a credentials Secret that could be secret, with its fragments: a token id
    in the single-string form carries its secret after '=', a value may hold several lines."""
    out: set[str] = set()
    for key, raw in data.items():
        text = raw.decode("utf-8", errors="replace")
        parts = {text, text.strip(), *text.splitlines()}
        if key in ("tokenId", "username") and (TOKEN_ID if key == "tokenId" else USER_ID).fullmatch(text.strip()):
            continue  # a well-formed principal name is what messages name on purpose
        for part in list(parts):
            parts |= {p for p in re.split(r"[=!\s]", part) if p}
        out |= {p.strip() for p in parts if len(p.strip()) >= 4}
    return tuple(sorted(out, key=len, reverse=True))


def _shape(value: str) -> str:
    """What is wrong with a token id, in words that never include it."""
    if any(c in value for c in "\r\n"):
        return "it contains a line break"
    if "=" in value:
        return "it holds a '=': the single-string form user@realm!name=secret goes in two keys, tokenId and tokenSecret"
    if "!" not in value:
        if re.fullmatch(r"[0-9a-fA-F-]{32,40}", value):
            return "it looks like a token secret (are tokenId and tokenSecret swapped?)"
        return "it has no '!tokenname' part"
    if "@" not in value.split("!", 1)[0]:
        return "its user has no @realm"
    return "it has characters Proxmox does not allow in a token id"


def _check_token_id(secret_name: str, token_id: str) -> None:
    if not TOKEN_ID.fullmatch(token_id):
        raise CredentialsMissing(
            f"Secret {secret_name}: key tokenId is not a Proxmox token id of the form user@realm!tokenname: "
            f"{_shape(token_id)} (the value is not shown)"
        )


def _check_username(secret_name: str, username: str) -> None:
    if not USER_ID.fullmatch(username):
        raise CredentialsMissing(
            f"Secret {secret_name}: key username is not a Proxmox user of the form user@realm "
            "(the value is not shown)"
        )


def scrub(text: str, secrets: Iterable[str]) -> str:
    return redact.scrub(text, secrets)


def scrubbed(error: ProxmoxError, secrets: Iterable[str]) -> ProxmoxError:
    """``error`` with the credentials (and URL user info) taken out of every text it carries."""
    values = tuple(secrets)
    clean = copy.copy(error)
    clean.message = redact.scrub(error.message, values)
    clean.args = (clean.message,)
    clean.reason_phrase = redact.scrub(error.reason_phrase, values) if error.reason_phrase else error.reason_phrase
    if error.errors:
        clean.errors = {redact.scrub(k, values): redact.scrub(v, values) for k, v in error.errors.items()}
    clean.endpoint = redact.scrub(error.endpoint, values) if error.endpoint else error.endpoint
    return clean


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
    secrets = secret_values(data)
    if token_id and token_secret:
        _check_token_id(secret_name, token_id)
        creds = ClusterCredentials(token_id=token_id, token_secret=token_secret)
    elif token_id and not (username and password):
        _check_token_id(secret_name, token_id)  # say what is wrong with it before what is missing
        raise CredentialsMissing(f"Secret {secret_name} has tokenId but no tokenSecret")
    elif username and password:
        _check_username(secret_name, username)
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
        secrets=secrets,
        fingerprint=spec.tls.fingerprint,
    )


def client_for(
    cluster: ProxmoxCluster,
    credentials: ClusterCredentials,
    *,
    client_factory: ClientFactory = ProxmoxClient,
    connect_timeout: float = 5.0,
    read_timeout: float = 30.0,
) -> ProxmoxClient:
    """A client for ``cluster`` (``ConfigurationError`` if the values cannot work, scrubbed).

    The client also scrubs what servers echo against every value of the Secret, not only the one
    secret it sends."""
    try:
        client = client_factory(
            cluster.spec.api_endpoint,
            **credentials.client_kwargs(),
            **({"fallbacks": cluster.spec.api_endpoints} if cluster.spec.api_endpoints else {}),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
    except ProxmoxError as exc:
        raise scrubbed(exc, credentials.secrets) from None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(redact.scrub(f"cannot build a client: {exc}", credentials.secrets)) from None
    extra = getattr(client, "_secrets", None)
    if isinstance(extra, list):
        extra.extend(credentials.secrets)
    return client
