"""Registration's pure parts: when a cluster is due, what its status says, what a patch holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reconciler.apply.proxmox import errors
from reconciler.apply.proxmox.client import ClusterInfo, NodeInfo
from reconciler.apply.proxmox.credentials import read_credentials
from reconciler.apply.proxmox.registration import (
    due_reason,
    failed_status,
    format_time,
    ready_condition,
    status_patch,
    verified_status,
)
from reconciler.config.models import ProxmoxCluster

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def cluster(**spec: Any) -> ProxmoxCluster:
    base: dict[str, Any] = {"apiEndpoint": "https://pve.example:8006", "credentialsSecretRef": {"name": "pve-creds"}}
    base.update(spec)
    return ProxmoxCluster.model_validate({"metadata": {"name": "pve"}, "spec": base})


def info(nodes: int = 3, online: int | None = None, quorate: bool = True) -> ClusterInfo:
    online = nodes if online is None else online
    node_infos = tuple(NodeInfo(f"pve{i + 1}", i < online) for i in range(nodes))
    return ClusterInfo("8.2.4", "8.2", "abc", "lab", quorate, nodes, online, node_infos)


def cr(status: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "pve", "generation": generation}, "status": status or {}}


def test_a_cluster_never_verified_is_due() -> None:
    assert due_reason(cr(), cluster(), now=T0) == "never verified"


def test_a_cluster_verified_for_this_generation_within_the_interval_is_not_due() -> None:
    status = verified_status({}, cluster(), info(), generation=1, now=T0)
    assert due_reason(cr(status), cluster(), now=T0 + timedelta(minutes=4, seconds=59)) is None


def test_the_default_interval_of_five_minutes_makes_it_due_again() -> None:
    status = verified_status({}, cluster(), info(), generation=1, now=T0)
    assert due_reason(cr(status), cluster(), now=T0 + timedelta(minutes=5)) == "interval passed"


def test_a_custom_verify_interval_is_honoured() -> None:
    status = verified_status({}, cluster(), info(), generation=1, now=T0)
    spec = cluster(verifyInterval="1h")
    assert due_reason(cr(status), spec, now=T0 + timedelta(minutes=59)) is None
    assert due_reason(cr(status), spec, now=T0 + timedelta(hours=1)) == "interval passed"


def test_a_new_generation_is_due_at_once() -> None:
    status = verified_status({}, cluster(), info(), generation=1, now=T0)
    assert due_reason(cr(status, generation=2), cluster(), now=T0) == "spec changed"


def test_force_makes_every_cluster_due() -> None:
    status = verified_status({}, cluster(), info(), generation=1, now=T0)
    assert due_reason(cr(status), cluster(), now=T0, force=True) == "forced"


def test_a_failed_verification_is_retried_after_a_minute_not_the_whole_interval() -> None:
    status = failed_status({}, cluster(verifyInterval="1h"), errors.Timeout("slow"), generation=1, now=T0)
    assert due_reason(cr(status), cluster(verifyInterval="1h"), now=T0 + timedelta(seconds=59)) is None
    assert due_reason(cr(status), cluster(verifyInterval="1h"), now=T0 + timedelta(seconds=60)) == (
        "retrying after failure"
    )


def test_a_healthy_cluster_gets_facts_ready_true_verified_and_phase_ready() -> None:
    status = verified_status({}, cluster(expectedNodeCount=3), info(), generation=4, now=T0)
    assert {k: status[k] for k in ("version", "release", "clusterName", "quorate", "nodeCount", "onlineNodes")} == {
        "version": "8.2.4",
        "release": "8.2",
        "clusterName": "lab",
        "quorate": True,
        "nodeCount": 3,
        "onlineNodes": 3,
    }
    assert status["health"] == "Healthy"
    assert status["phase"] == "Ready"
    assert status["lastVerified"] == "2025-03-01T12:00:00Z"
    assert status["observedGeneration"] == 4
    assert status["warnings"] is None and status["lastError"] is None and status["tlsInsecure"] is None
    condition = ready_condition(status)
    assert condition is not None
    assert condition["status"] == "True" and condition["reason"] == "Verified"
    assert condition["observedGeneration"] == 4
    assert condition["message"] == "Proxmox VE 8.2.4, cluster lab, 3/3 nodes online, quorate"


def test_an_expected_node_count_mismatch_is_a_warning_and_degrades_health() -> None:
    status = verified_status({}, cluster(expectedNodeCount=4), info(nodes=3), generation=1, now=T0)
    assert status["health"] == "Degraded"
    assert status["warnings"] == ["expected 4 nodes (spec.expectedNodeCount), the cluster reports 3"]
    assert ready_condition(status)["status"] == "True"  # type: ignore[index]


def test_a_cluster_without_quorum_is_degraded() -> None:
    status = verified_status({}, cluster(), info(nodes=3, online=1, quorate=False), generation=1, now=T0)
    assert status["health"] == "Degraded"
    assert "the cluster is not quorate" in status["warnings"]
    assert "2 of 3 nodes offline: pve2, pve3" in status["warnings"]


def test_insecure_skip_verify_shows_as_tls_insecure_and_a_warning() -> None:
    spec = cluster(tls={"insecureSkipVerify": True})
    status = verified_status({}, spec, info(), generation=1, now=T0)
    assert status["tlsInsecure"] is True
    assert status["warnings"] == ["TLS certificate verification is disabled (spec.tls.insecureSkipVerify)"]
    assert status["health"] == "Healthy"


@pytest.mark.parametrize(
    "error",
    [
        errors.Unreachable("down"),
        errors.TLSFailure("bad cert"),
        errors.AuthenticationFailed("401"),
        errors.PermissionDenied("403"),
        errors.Timeout("slow"),
        errors.APIError("500"),
        errors.CredentialsMissing("no Secret"),
    ],
    ids=lambda e: e.reason,
)
def test_a_failure_sets_ready_false_with_the_classified_reason(error: errors.ProxmoxError) -> None:
    status = failed_status({}, cluster(), error, generation=1, now=T0)
    condition = ready_condition(status)
    assert condition is not None
    assert (condition["status"], condition["reason"], condition["message"]) == ("False", error.reason, error.message)
    assert status["phase"] == "Failed"
    assert status["health"] == error.reason  # one health state per kind of failure
    assert status["lastError"] == error.message


def test_last_known_facts_survive_a_failure_of_the_same_spec_but_not_of_a_changed_one() -> None:
    good = verified_status({}, cluster(), info(), generation=1, now=T0)
    same = failed_status(good, cluster(), errors.Timeout("slow"), generation=1, now=T0)
    assert same["version"] == "8.2.4" and same["nodeCount"] == 3
    changed = failed_status(good, cluster(), errors.Timeout("slow"), generation=2, now=T0)
    assert changed["version"] is None and changed["nodeCount"] is None
    assert status_patch(good, changed)["version"] is None  # merge patch: remove the stale fact


def test_the_transition_time_moves_only_when_the_ready_status_flips() -> None:
    first = verified_status({}, cluster(), info(), generation=1, now=T0)
    again = verified_status(first, cluster(), info(), generation=1, now=T0 + timedelta(minutes=5))
    assert ready_condition(again)["lastTransitionTime"] == format_time(T0)  # type: ignore[index]
    failed = failed_status(again, cluster(), errors.Timeout("slow"), generation=1, now=T0 + timedelta(minutes=10))
    assert ready_condition(failed)["lastTransitionTime"] == format_time(T0 + timedelta(minutes=10))  # type: ignore[index]
    still = failed_status(failed, cluster(), errors.Unreachable("down"), generation=1, now=T0 + timedelta(minutes=11))
    assert ready_condition(still)["lastTransitionTime"] == format_time(T0 + timedelta(minutes=10))  # type: ignore[index]


def test_a_reverification_with_the_same_answer_patches_only_last_verified() -> None:
    first = verified_status({}, cluster(), info(), generation=1, now=T0)
    live = {k: v for k, v in first.items() if v is not None}
    again = verified_status(live, cluster(), info(), generation=1, now=T0 + timedelta(minutes=5))
    assert status_patch(live, again) == {"lastVerified": "2025-03-01T12:05:00Z"}


def test_conditions_of_other_types_are_kept_unchanged() -> None:
    other = {
        "type": "Reconciling",
        "status": "False",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
        "reason": "Done",
        "message": "",
    }
    status = verified_status({"conditions": [other]}, cluster(), info(), generation=1, now=T0)
    # The one conditions helper of both kinds lists Ready first (kstatus order).
    assert [c["type"] for c in status["conditions"]] == ["Ready", "Reconciling"]
    assert status["conditions"][1] == other


# --- credentials ------------------------------------------------------------------------------


def secrets(**named: dict[str, str]) -> Any:
    store = {name: {k: v.encode() for k, v in data.items()} for name, data in named.items()}
    return store.get


def test_token_credentials_are_preferred_over_a_password() -> None:
    read = secrets(
        **{
            "pve-creds": {
                "tokenId": "a@pve!t",
                "tokenSecret": "s3cr3t-token",
                "username": "u@pam",
                "password": "pw-123456",
            }
        }
    )
    creds = read_credentials(read, cluster())
    assert creds.auth_kind == "token" and creds.token_id == "a@pve!t"
    assert "s3cr3t-token" not in repr(creds)


def test_username_and_password_are_used_when_there_is_no_token() -> None:
    creds = read_credentials(secrets(**{"pve-creds": {"username": "u@pam", "password": "pw-123456"}}), cluster())
    assert creds.auth_kind == "ticket" and creds.username == "u@pam"
    assert "pw-123456" not in repr(creds)


def test_a_missing_secret_names_the_secret_and_the_keys_expected() -> None:
    with pytest.raises(errors.CredentialsMissing) as caught:
        read_credentials(secrets(), cluster())
    assert caught.value.reason == "CredentialsMissing"
    assert str(caught.value) == (
        "Secret pve-creds (spec.credentialsSecretRef) does not exist; "
        "create it with keys tokenId + tokenSecret or username + password"
    )


def test_a_secret_with_half_a_token_names_the_keys_present_but_no_value() -> None:
    with pytest.raises(errors.CredentialsMissing) as caught:
        read_credentials(secrets(**{"pve-creds": {"tokenSecret": "value-never-shown"}}), cluster())
    assert "present: tokenSecret" in str(caught.value)
    assert "value-never-shown" not in str(caught.value)


def test_the_ca_bundle_comes_from_its_secret_under_ca_crt_by_default() -> None:
    read = secrets(**{"pve-creds": {"tokenId": "a@pve!t", "tokenSecret": "x" * 8}, "pve-ca": {"ca.crt": "PEM"}})
    creds = read_credentials(read, cluster(tls={"caBundleSecretRef": {"name": "pve-ca"}}))
    assert creds.ca_bundle == b"PEM"


def test_a_missing_ca_key_is_credentials_missing_naming_the_key() -> None:
    read = secrets(**{"pve-creds": {"tokenId": "a@pve!t", "tokenSecret": "x" * 8}, "pve-ca": {"other": "PEM"}})
    with pytest.raises(errors.CredentialsMissing, match=r"Secret pve-ca has no key bundle\.pem"):
        read_credentials(read, cluster(tls={"caBundleSecretRef": {"name": "pve-ca", "key": "bundle.pem"}}))


def test_insecure_skip_verify_is_off_unless_the_file_says_so() -> None:
    read = secrets(**{"pve-creds": {"tokenId": "a@pve!t", "tokenSecret": "x" * 8}})
    assert read_credentials(read, cluster()).insecure_skip_verify is False
    assert read_credentials(read, cluster(tls={"insecureSkipVerify": True})).insecure_skip_verify is True
