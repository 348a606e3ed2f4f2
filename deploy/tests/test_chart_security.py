"""The chart's pods run locked down, take credentials only from Secrets, and sit behind a
NetworkPolicy that admits only the gRPC and metrics ports."""

from __future__ import annotations

import re
from typing import Any

from deploy_support import (
    GRPC_PORT,
    METRICS_PORT,
    PRODUCTION_VALUES,
    containers,
    of_kind,
    production_values,
    selector_matches,
)


def test_pods_are_locked_down(objects: list[dict[str, Any]]) -> None:
    workloads = of_kind(objects, "Deployment") + of_kind(objects, "Job")
    assert len(workloads) == 5
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert "add" not in ctx["capabilities"]
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]


def secret_refs(objects: list[dict[str, Any]]) -> set[str]:
    names = set()
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
    return names


def test_production_values_take_credentials_only_from_existing_secrets(production_objects: list[dict[str, Any]]) -> None:
    values = production_values()
    assert not of_kind(production_objects, "Secret"), "production must not render a Secret"
    assert secret_refs(production_objects) == {values["database"]["existingSecret"], values["kafka"]["existingSecret"]}
    assert not values["database"].get("url")
    text = PRODUCTION_VALUES.read_text(encoding="utf-8")
    uncommented = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert not re.search(r"://[^/\s@:]+:[^@\s]+@", uncommented), "a URL with a password in production values"
    assert not re.search(r"(?i)^\s*(password|token|secret)\s*:\s*\S", uncommented, re.M)
    for workload in of_kind(production_objects, "Deployment") + of_kind(production_objects, "Job"):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                assert "postgres://" not in str(env.get("value", "")), env
                if "PASSWORD" in env["name"] or env["name"].endswith("DATABASE_URL"):
                    assert "secretKeyRef" in env.get("valueFrom", {}), env


def test_default_values_use_a_chart_secret_for_the_database_url(default_objects: list[dict[str, Any]]) -> None:
    (secret,) = of_kind(default_objects, "Secret")
    assert secret_refs(default_objects) == {secret["metadata"]["name"]}


def test_network_policy_guards_every_role(objects: list[dict[str, Any]]) -> None:
    (policy,) = of_kind(objects, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]
    for deployment in of_kind(objects, "Deployment"):
        assert selector_matches(selector, deployment["spec"]["template"]["metadata"]["labels"])
        port_names = {p["name"] for p in containers(deployment)[0]["ports"]}
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                assert port["port"] in port_names or port["port"] in (GRPC_PORT, METRICS_PORT)
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert allowed == {"grpc", "metrics"}
