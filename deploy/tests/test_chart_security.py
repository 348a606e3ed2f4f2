"""The chart's pods run locked down, take credentials only from Secrets, and sit behind a
NetworkPolicy that admits only the gRPC and metrics ports. Authentication is on by default:
the tokens file is mounted from a Secret (the user's, or one the chart generates), TLS values
wire server.tls.*, CA Secrets for Kafka and PostgreSQL are mounted where the config points,
and the ServiceMonitor scrapes with a bearer token."""

from __future__ import annotations

import hashlib
import re
import tomllib
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from deploy_support import (
    CHART,
    CHART_COMPONENTS,
    CUSTOM_RESOURCES,
    GRPC_PORT,
    KUBE_VERSIONS,
    METRICS_PORT,
    NAMESPACE,
    PRODUCTION_VALUES,
    by_component,
    containers,
    of_kind,
    production_values,
    render,
    render_notes,
    secret_file,
    selector_matches,
    strip,
)

SECRETS_DIR = "/var/run/secrets/pure-reducer"


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


def secret_volumes(objects: list[dict[str, Any]]) -> set[str]:
    return {
        volume["secret"]["secretName"]
        for workload in of_kind(objects, "Deployment") + of_kind(objects, "Job")
        for volume in workload["spec"]["template"]["spec"].get("volumes", [])
        if "secret" in volume
    }


def test_production_values_take_credentials_only_from_existing_secrets(production_objects: list[dict[str, Any]]) -> None:
    values = production_values()
    assert not of_kind(production_objects, "Secret"), "production must not render a Secret"
    assert secret_refs(production_objects) == {values["database"]["existingSecret"], values["kafka"]["existingSecret"]}
    assert secret_volumes(production_objects) == {
        values["auth"]["existingSecret"], values["tls"]["existingSecret"], values["kafka"]["caSecret"]
    }
    assert values["auth"]["mode"] == "token" and values["auth"]["generateTokens"] is False
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
    secrets = {s["metadata"]["name"]: s for s in of_kind(default_objects, "Secret")}
    assert set(secrets) == {"pure-reducer-database", "pure-reducer-auth"}
    assert secret_refs(default_objects) == {"pure-reducer-database"}
    assert set(secrets["pure-reducer-database"]["stringData"]) == {"database-url"}


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


# ---------------------------------------------------------------------------------------------
# Authentication, TLS and CA files.
# ---------------------------------------------------------------------------------------------

def config_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = of_kind(objects, "ConfigMap")
    return tomllib.loads(config_map["data"]["config.toml"])


def role_pods(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, reducerd container) of every role Deployment."""
    deployments = by_component(objects, "Deployment")
    assert set(deployments) == set(CHART_COMPONENTS)
    pods = []
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pods.append((pod, container))
    return pods


def env_value(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def tokens_of(text: str) -> dict[str, dict[str, Any]]:
    """sha256 -> entry of a tokens file, checked the way reducerd reads it."""
    entries = tomllib.loads(text)["token"]
    found = {}
    for entry in entries:
        assert set(entry) == {"sha256", "subject", "namespaces", "roles"}, entry
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), entry["sha256"]
        assert entry["subject"].strip()
        assert entry["namespaces"] and set(entry["roles"]) <= {"reader", "writer", "admin"}
        assert entry["sha256"] not in found, "the same token is listed twice"
        found[entry["sha256"]] = entry
    return found


def test_tokens_file_is_mounted_from_the_auth_secret(objects: list[dict[str, Any]]) -> None:
    config = config_of(objects)
    assert config["auth"]["mode"] == "token"
    tokens_file = config["auth"]["tokens_file"]
    assert tokens_file == f"{SECRETS_DIR}/auth/tokens.toml"
    expected = ("pure-reducer-auth", "tokens.toml")  # chart-made by default, existing in production
    for pod, container in role_pods(objects):
        assert secret_file(pod, container, tokens_file) == expected
        # The auth config reaches reducerd through the mounted config file, not the environment.
        assert env_value(container, "PURE_REDUCER_AUTH_MODE") is None
        assert "--config=/etc/pure-reducer/config.toml" in container["args"]


def test_tokens_secret_name_and_key_follow_values() -> None:
    objects = render({"auth": {"existingSecret": "my-tokens", "existingSecretKey": "reducerd.toml"}})
    assert not [s for s in of_kind(objects, "Secret") if s["metadata"]["name"].endswith("-auth")]
    for pod, container in role_pods(objects):
        assert secret_file(pod, container, config_of(objects)["auth"]["tokens_file"]) == ("my-tokens", "reducerd.toml")


def test_generated_tokens_secret_lists_its_tokens(default_objects: list[dict[str, Any]]) -> None:
    (secret,) = [s for s in of_kind(default_objects, "Secret") if s["metadata"]["name"] == "pure-reducer-auth"]
    # An ordinary release object (kept across upgrades through lookup), not a hook.
    assert "helm.sh/hook" not in secret["metadata"].get("annotations", {})
    data = secret["stringData"]
    assert set(data) == {"tokens.toml", "admin-token", "metrics-token"}
    tokens = tokens_of(data["tokens.toml"])
    admin, metrics = data["admin-token"], data["metrics-token"]
    assert admin != metrics and len(admin) >= 32 and len(metrics) >= 32
    assert tokens[hashlib.sha256(admin.encode()).hexdigest()]["roles"] == ["admin"]
    assert tokens[hashlib.sha256(metrics.encode()).hexdigest()]["roles"] == ["reader"]
    assert len(tokens) == 2
    # Random per install: another render makes other tokens.
    (again,) = [s for s in of_kind(render(), "Secret") if s["metadata"]["name"] == "pure-reducer-auth"]
    assert again["stringData"]["admin-token"] != admin


def test_pods_mount_only_the_tokens_file_of_the_generated_secret(default_objects: list[dict[str, Any]]) -> None:
    for pod, _ in role_pods(default_objects):
        (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "pure-reducer-auth"]
        assert volume["secret"]["items"] == [{"key": "tokens.toml", "path": "tokens.toml"}]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth": {"generateTokens": False}},
         'auth.mode is "token" but no tokens Secret is given: set auth.existingSecret'),
        ({"auth": {"mode": "basic"}}, 'auth.mode must be "token" or "none" (got basic)'),
        ({"auth": {"existingSecret": "tokens"}, "serviceMonitor": {"enabled": True}},
         'serviceMonitor.tokenSecret.name is required with auth.mode "token" and auth.existingSecret'),
        ({"tls": {"requireClientCertificates": True}},
         "tls.requireClientCertificates needs TLS: set tls.existingSecret"),
    ],
)
def test_incomplete_security_values_fail_the_render(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(values)


def test_auth_mode_none_mounts_no_tokens() -> None:
    objects = render({"auth": {"mode": "none"}, "serviceMonitor": {"enabled": True}})
    assert config_of(objects)["auth"] == {"mode": "none"}
    assert [s["metadata"]["name"] for s in of_kind(objects, "Secret")] == ["pure-reducer-database"]
    for pod, container in role_pods(objects):
        assert not [v for v in pod["volumes"] if "secret" in v]
        assert not [m for m in container["volumeMounts"] if m["mountPath"].startswith(SECRETS_DIR)]
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert all("authorization" not in endpoint for endpoint in monitor["spec"]["endpoints"])
    assert "WARNING: auth.mode=none" in render_notes({"auth": {"mode": "none"}})


@pytest.mark.parametrize(
    ("values", "credentials"),
    [
        ({"serviceMonitor": {"enabled": True}}, {"name": "pure-reducer-auth", "key": "metrics-token"}),
        ({"serviceMonitor": {"enabled": True, "tokenSecret": {"name": "scrape", "key": "t"}}},
         {"name": "scrape", "key": "t"}),
        (None, {"name": "pure-reducer-metrics-token", "key": "token"}),  # production values
    ],
)
def test_service_monitor_sends_a_bearer_token(values: dict[str, Any] | None, credentials: dict[str, str]) -> None:
    objects = render(production_values() if values is None else values)
    (monitor,) = of_kind(objects, "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["authorization"] == {"type": "Bearer", "credentials": credentials}
        assert "bearerTokenSecret" not in endpoint and "bearerTokenFile" not in endpoint


def test_tls_values_wire_server_tls(production_objects: list[dict[str, Any]]) -> None:
    server = config_of(production_objects)["server"]
    assert set(server["tls"]) == {"cert_file", "key_file"}
    for pod, container in role_pods(production_objects):
        assert secret_file(pod, container, server["tls"]["cert_file"]) == ("pure-reducer-tls", "tls.crt")
        assert secret_file(pod, container, server["tls"]["key_file"]) == ("pure-reducer-tls", "tls.key")
    # Cleartext HTTP/2 is no longer what the gRPC port speaks.
    for service in of_kind(production_objects, "Service"):
        grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc.get("appProtocol") != "kubernetes.io/h2c"
    assert "grpcurl -cacert ca.crt" in render_notes(production_values())


def test_default_values_serve_cleartext_grpc(default_objects: list[dict[str, Any]]) -> None:
    assert "tls" not in config_of(default_objects)["server"]
    for service in of_kind(default_objects, "Service"):
        grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["appProtocol"] == "kubernetes.io/h2c"


@pytest.mark.parametrize(
    ("tls", "ca"),
    [
        ({"existingSecret": "cert", "requireClientCertificates": True}, ("cert", "ca.crt")),
        ({"existingSecret": "cert", "requireClientCertificates": True, "clientCaSecret": "clients",
          "clientCaSecretKey": "bundle.pem"}, ("clients", "bundle.pem")),
    ],
)
def test_client_certificates_use_the_client_ca(tls: dict[str, Any], ca: tuple[str, str]) -> None:
    objects = render({"tls": tls})
    server_tls = config_of(objects)["server"]["tls"]
    for pod, container in role_pods(objects):
        assert secret_file(pod, container, server_tls["cert_file"]) == ("cert", "tls.crt")
        assert secret_file(pod, container, server_tls["key_file"]) == ("cert", "tls.key")
        assert secret_file(pod, container, server_tls["client_ca_file"]) == ca
    assert "-cert client.crt -key client.key" in render_notes({"tls": tls})


def test_kafka_ca_is_mounted_and_exported(production_objects: list[dict[str, Any]]) -> None:
    values = production_values()
    for pod, container in role_pods(production_objects):
        path = env_value(container, "PURE_REDUCER_KAFKA_SSL_CA_FILE")
        assert path == f"{SECRETS_DIR}/kafka/ca.crt"
        assert secret_file(pod, container, path) == (values["kafka"]["caSecret"], values["kafka"]["caSecretKey"])
    for _, container in role_pods(render()):
        assert env_value(container, "PURE_REDUCER_KAFKA_SSL_CA_FILE") is None


def test_database_ca_reaches_pods_and_migration_job() -> None:
    objects = render({"database": {"caSecret": "pg-ca", "caSecretKey": "root.crt"}})
    path = f"{SECRETS_DIR}/database/ca.crt"
    (job,) = of_kind(objects, "Job")
    job_pod = job["spec"]["template"]["spec"]
    pods = role_pods(objects) + [(job_pod, job_pod["containers"][0])]
    for pod, container in pods:
        assert secret_file(pod, container, path) == ("pg-ca", "root.crt")


def test_notes_tell_how_to_call_with_a_token() -> None:
    default = render_notes()
    assert 'authorization: Bearer $TOKEN' in default
    assert "get secret pure-reducer-auth -o jsonpath='{.data.admin-token}'" in default
    assert 'curl -s -H "Authorization: Bearer $TOKEN"' in default
    production = render_notes(production_values())
    assert "Secret pure-reducer-auth (key tokens.toml)" in production
    assert "sha256sum" in production and "admin-token" not in production


ALL_SECURITY_OPTIONS = {
    "auth": {"existingSecret": "tokens"},
    "tls": {"existingSecret": "cert", "requireClientCertificates": True, "clientCaSecret": "clients"},
    "kafka": {"caSecret": "kafka-ca", "securityProtocol": "SSL"},
    "database": {"caSecret": "pg-ca"},
    "serviceMonitor": {"enabled": True, "tokenSecret": {"name": "scrape"}},
}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_security_option_renders_valid_objects(kube_version: str) -> None:
    objects = render(ALL_SECURITY_OPTIONS)
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(strip(obj), kube_version, strict=True)
        checked += 1
    assert checked >= 15
    report = helm.lint(CHART, ALL_SECURITY_OPTIONS, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report
