"""SelfSubjectAccessReview (``kubectl auth can-i``) over the RBAC objects the sandbox stores.

The sandbox does not authenticate or authorize requests: every client is treated as a cluster
admin (``system:masters``), so a review for the client itself is always allowed, as it would be
for an admin of a real cluster. A review made while impersonating (``kubectl auth can-i --as=
system:serviceaccount:<ns>:<name>`` or ``--as=<user> --as-group=<group>``) is evaluated the way
the apiserver's RBAC authorizer does it: the ClusterRoleBindings and RoleBindings whose subjects
match the identity, the rules of the roles they name (verbs, apiGroups, resources with
subresources, resourceNames, nonResourceURLs, ``*`` wildcards). Aggregated ClusterRoles are
honoured through their stored ``rules``; nothing fills them in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

ADMIN_GROUP = "system:masters"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]

    @classmethod
    def from_impersonation(cls, user: str, groups: Iterable[str]) -> Identity:
        extra = list(groups)
        if user.startswith("system:serviceaccount:") and user.count(":") == 3:
            namespace = user.split(":")[2]
            extra += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        if user != "system:anonymous":
            extra.append("system:authenticated")
        return cls(user, tuple(dict.fromkeys(extra)))


Lister = Callable[[str, str], list[dict[str, Any]]]  # (plural, namespace or "") -> objects


def _subject_matches(subject: dict[str, Any], who: Identity, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name == who.user)
    if kind == "Group":
        return name in who.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return who.user == f"system:serviceaccount:{namespace}:{name}"
    return False


def _rule_allows(rule: dict[str, Any], attrs: dict[str, Any]) -> bool:
    verbs = rule.get("verbs") or ()
    if "*" not in verbs and attrs.get("verb") not in verbs:
        return False
    if "nonResourceAttributes" in attrs:
        path = attrs["nonResourceAttributes"]
        return any(url == path or url == "*" or (url.endswith("*") and path.startswith(url[:-1]))
                   for url in rule.get("nonResourceURLs") or ())
    if rule.get("nonResourceURLs") and not rule.get("resources"):
        return False
    groups = rule.get("apiGroups") or ()
    if "*" not in groups and attrs.get("group", "") not in groups:
        return False
    resource, sub = attrs.get("resource", ""), attrs.get("subresource", "")
    wanted = f"{resource}/{sub}" if sub else resource
    resources = rule.get("resources") or ()
    if not any(r == "*" or r == wanted or (sub and r == f"*/{sub}") for r in resources):
        return False
    names = rule.get("resourceNames") or ()
    return not names or attrs.get("name", "") in names


def _role_rules(lister: Lister, ref: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    kind, name = ref.get("kind"), ref.get("name")
    if kind == "ClusterRole":
        found = [r for r in lister("clusterroles", "") if r["metadata"]["name"] == name]
    else:
        found = [r for r in lister("roles", namespace) if r["metadata"]["name"] == name]
    return list((found[0].get("rules") or ()) if found else ())


def _describe(subject: dict[str, Any]) -> str:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{name}/{subject.get("namespace", "")}"'
    return f'{kind} "{name}"'


def review(who: Identity | None, attrs: dict[str, Any], lister: Lister) -> dict[str, Any]:
    """The ``status`` of a SelfSubjectAccessReview for ``attrs`` (resource or non-resource)."""
    if who is None or ADMIN_GROUP in who.groups:
        return {"allowed": True, "reason": "the kube sandbox authorizes every request of its "
                "own clients (as for a cluster admin; RBAC is not enforced)"}
    namespace = attrs.get("namespace", "")
    bindings = [("ClusterRoleBinding", b, "") for b in lister("clusterrolebindings", "")]
    if namespace and "nonResourceAttributes" not in attrs:
        bindings += [("RoleBinding", b, namespace) for b in lister("rolebindings", namespace)]
    for kind, binding, scope in bindings:
        subjects = [s for s in binding.get("subjects") or ()
                    if _subject_matches(s, who, binding["metadata"].get("namespace", ""))]
        if not subjects:
            continue
        ref = binding.get("roleRef") or {}
        if any(_rule_allows(rule, attrs) for rule in _role_rules(lister, ref, scope)):
            where = f'{binding["metadata"]["name"]}/{scope}' if scope else \
                binding["metadata"]["name"]
            return {"allowed": True, "reason": f'RBAC: allowed by {kind} "{where}" of '
                    f'{ref.get("kind")} "{ref.get("name")}" to {_describe(subjects[0])}'}
    return {"allowed": False}


def attributes(spec: dict[str, Any]) -> dict[str, Any]:
    """Flatten a review's spec into the attributes ``review`` matches rules against."""
    if spec.get("nonResourceAttributes"):
        non = spec["nonResourceAttributes"]
        return {"verb": non.get("verb", ""), "nonResourceAttributes": non.get("path", "")}
    res = spec.get("resourceAttributes") or {}
    return {key: res.get(key, "") for key in ("namespace", "verb", "group", "resource",
                                              "subresource", "name")}
