"""The webhook triggers a reconcile only for a request that proves the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

import pytest

from reconciler.loop import webhook
from reconciler.loop.metrics import Metrics
from reconciler.loop.server import HTTPServer, State

SECRET = "hook-secret"
BODY = json.dumps({"ref": "refs/heads/main"}).encode()


@pytest.fixture
def served():
    state, metrics = State(), Metrics()
    server = HTTPServer(state, metrics, host="127.0.0.1", port=0, webhook_secret=SECRET).start()
    yield state, metrics, f"http://127.0.0.1:{server.port}"
    server.stop()


def post(url: str, headers: dict[str, str], body: bytes = BODY) -> int:
    request = urllib.request.Request(f"{url}/hooks/git", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_github_signed_push_is_accepted_and_triggers_a_cycle(served):
    state, _, url = served
    assert post(url, {"X-Hub-Signature-256": webhook.sign_github(SECRET, BODY)}) == 202
    assert state.trigger.is_set()


def test_a_forged_signature_is_refused_with_401_and_triggers_nothing(served):
    state, _, url = served
    forged = webhook.sign_github("not-the-secret", BODY)
    assert post(url, {"X-Hub-Signature-256": forged}) == 401
    assert post(url, {}) == 401
    assert post(url, {"X-Hub-Signature-256": webhook.sign_github(SECRET, BODY)}, body=BODY + b" ") == 401
    assert not state.trigger.is_set()


def test_gitlab_secret_token_and_gitlab_signing_token_are_both_accepted():
    assert webhook.verify(SECRET, {"X-Gitlab-Token": SECRET}, BODY) == "gitlab"
    assert webhook.verify(SECRET, {"X-Gitlab-Token": "wrong"}, BODY) is None
    key = b"0123456789abcdef0123456789abcdef"
    signing = "whsec_" + base64.b64encode(key).decode()
    stamp = str(int(time.time()))
    digest = base64.b64encode(hmac.new(key, f"msg_1.{stamp}.".encode() + BODY, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": f"v1,{digest}"}
    assert webhook.verify(signing, headers, BODY) == "gitlab"


def test_a_replayed_gitlab_signed_delivery_older_than_five_minutes_is_refused():
    key = b"k" * 32
    signing = "whsec_" + base64.b64encode(key).decode()
    stamp = str(int(time.time()) - 3600)
    digest = base64.b64encode(hmac.new(key, f"m.{stamp}.".encode() + BODY, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": "m", "webhook-timestamp": stamp, "webhook-signature": f"v1,{digest}"}
    assert webhook.verify(signing, headers, BODY) is None


def test_without_a_configured_secret_every_webhook_is_refused():
    assert webhook.verify("", {"X-Hub-Signature-256": webhook.sign_github("", BODY)}, BODY) is None


def test_health_readiness_and_metrics_endpoints_answer(served):
    state, metrics, url = served
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
        assert answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as not_ready:
        urllib.request.urlopen(f"{url}/readyz", timeout=5)
    assert not_ready.value.code == 503
    state.ready = True
    with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
        assert answer.status == 200
    metrics.cycles.labels("ok").inc()
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert 'multinic_reconcile_cycles_total{result="ok"} 1.0' in text
    assert "multinic_node_jobs_in_flight" in text
