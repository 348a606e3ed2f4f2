"""The Helm chart lints, renders valid Kubernetes objects and wires its workloads together.

Also: a materializer replica count above the Kafka partitions fails the render, the ConfigMap
is the config values as TOML, and the migration Job runs as a pre-install/pre-upgrade hook.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from deploy_support import (
    ALL_ROLES,
    CHART,
    CHART_COMPONENTS,
    CUSTOM_RESOURCES,
    GRPC_PORT,
    KUBE_VERSIONS,
    METRICS_PORT,
    NAMESPACE,
    by_component,
    component,
    containers,
    of_kind,
    production_values,
    render,
    roles_of,
    selector_matches,
    strip,
)


@pytest.mark.parametrize("values_name", ["default", "production"])
def test_chart_lints_clean(values_name: str) -> None:
    values = production_values() if values_name == "production" else None
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["total_charts_linted"] == 1
    assert not report["errors"], report["errors"]
    assert not problems, problems


def test_chart_renders_one_deployment_service_and_pdb_per_role(objects: list[dict[str, Any]]) -> None:
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(by_component(objects, kind)) == set(CHART_COMPONENTS), kind
    assert [component(h) for h in of_kind(objects, "HorizontalPodAutoscaler")] == ["reducer-service"]
    assert len(of_kind(objects, "ConfigMap")) == 1
    assert len(of_kind(objects, "NetworkPolicy")) == 1
    assert len(of_kind(objects, "Job")) == 1


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    objects: list[dict[str, Any]], kube_version: str
) -> None:
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue  # no schema ships with kubernetes-validate: see test_chart_monitoring.py
        try:
            kubernetes_validate.validate(strip(obj), kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{obj['_template']} {obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
        checked += 1
    assert checked >= 15


def test_names_are_valid_dns_labels(objects: list[dict[str, Any]]) -> None:
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63 and dns_label.match(name), f"{obj['kind']} name {name!r}"

def test_each_deployment_runs_its_roles(objects: list[dict[str, Any]]) -> None:
    deployments = by_component(objects, "Deployment")
    images = set()
    covered: set[str] = set()
    for name, deployment in deployments.items():
        (container,) = containers(deployment)
        assert roles_of(container) == CHART_COMPONENTS[name]
        assert "--config=/etc/pure-reducer/config.toml" in container["args"]
        covered |= roles_of(container)
        images.add(container["image"])
    assert covered == ALL_ROLES
    assert len(images) == 1, f"all roles must run the same image, got {images}"


def test_probes_use_native_grpc_health_checks(objects: list[dict[str, Any]]) -> None:
    # grpc.health.v1 stays open with auth.mode "token", so the kubelet needs no credential;
    # the kubelet's gRPC probe speaks cleartext only, so with TLS the probes are TCP checks.
    tls = "tls" in config_toml(objects)["server"]
    for deployment in of_kind(objects, "Deployment"):
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            # Never /metrics: it answers 401 without a token.
            assert "httpGet" not in container[probe], (component(deployment), probe)
            if tls:
                assert "grpc" not in container[probe]
                assert container[probe]["tcpSocket"] == {"port": "grpc"}, (component(deployment), probe)
            else:
                assert container[probe]["grpc"] == {"port": GRPC_PORT}, (component(deployment), probe)


def test_probes_switch_to_tcp_only_with_tls() -> None:
    plain = by_component(render(), "Deployment")
    tls = by_component(render({"tls": {"existingSecret": "cert"}}), "Deployment")
    for name in CHART_COMPONENTS:
        (before,) = containers(plain[name])
        (after,) = containers(tls[name])
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert before[probe]["grpc"] == {"port": GRPC_PORT}
            assert after[probe]["tcpSocket"] == {"port": "grpc"}
            assert set(after[probe]) - {"tcpSocket"} == set(before[probe]) - {"grpc"}


def test_services_select_their_deployment(objects: list[dict[str, Any]]) -> None:
    deployments = by_component(objects, "Deployment")
    for name, service in by_component(objects, "Service").items():
        selected = [
            dep_name for dep_name, dep in deployments.items()
            if selector_matches({"matchLabels": service["spec"]["selector"]},
                                dep["spec"]["template"]["metadata"]["labels"])
        ]
        assert selected == [name]
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports == {"grpc": (GRPC_PORT, "grpc"), "metrics": (METRICS_PORT, "metrics")}


def test_deployment_selectors_match_their_pods(objects: list[dict[str, Any]]) -> None:
    for deployment in of_kind(objects, "Deployment"):
        assert selector_matches(deployment["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


def test_hpa_scales_reducer_service(objects: list[dict[str, Any]]) -> None:
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    deployments = by_component(objects, "Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployments["reducer-service"]["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # Helm must not fight the autoscaler over the replica count.
    assert "replicas" not in deployments["reducer-service"]["spec"]
    for name in ("canonical-store", "event-bus", "projection-materializer"):
        assert deployments[name]["spec"]["replicas"] >= 1


def test_pdbs_select_their_deployment(objects: list[dict[str, Any]]) -> None:
    deployments = by_component(objects, "Deployment")
    for name, pdb in by_component(objects, "PodDisruptionBudget").items():
        matching = [
            dep_name for dep_name, dep in deployments.items()
            if selector_matches(pdb["spec"]["selector"], dep["spec"]["template"]["metadata"]["labels"])
        ]
        assert matching == [name]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"projectionMaterializer": {"replicas": 7}}, "projectionMaterializer.replicas (7) must not exceed config.kafka.partitions (6)"),
        ({"projectionMaterializer": {"replicas": 3}, "config": {"kafka": {"partitions": 2}}}, "projectionMaterializer.replicas (3) must not exceed config.kafka.partitions (2)"),
        ({"projectionMaterializer": {"autoscaling": {"enabled": True, "maxReplicas": 9}}}, "projectionMaterializer.autoscaling.maxReplicas (9) must not exceed config.kafka.partitions (6)"),
    ],
)
def test_materializer_replicas_cannot_exceed_partitions(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render(overrides)


def test_materializer_replicas_up_to_partitions_render() -> None:
    deployments = by_component(render({"projectionMaterializer": {"replicas": 6}}), "Deployment")
    assert deployments["projection-materializer"]["spec"]["replicas"] == 6
    values = production_values()
    values["projectionMaterializer"]["replicas"] = values["config"]["kafka"]["partitions"]
    render(values)


def config_toml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (config_map,) = of_kind(objects, "ConfigMap")
    return tomllib.loads(config_map["data"]["config.toml"])


def test_config_map_is_the_values_as_toml(objects: list[dict[str, Any]]) -> None:
    config = config_toml(objects)
    assert set(config) <= {"server", "storage", "reducer", "dedup", "kafka", "projection",
                           "event_bus", "telemetry", "workflow_types", "auth"}
    assert config["server"]["listen"] == f"0.0.0.0:{GRPC_PORT}"
    assert config["server"]["metrics_listen"] == f"0.0.0.0:{METRICS_PORT}"
    # Integers stay integers (Helm reads values as floats; reducerd rejects 3.0 for a count).
    assert config["reducer"] == {"max_attempts": 3, "backoff_base_ms": 10, "backoff_cap_ms": 250}
    for table in config.values():
        for key, value in table.items():
            assert not isinstance(value, float), f"{key} = {value!r} was written as a float"
    assert config["server"]["reflection"] in ("admin", "off")
    assert config["dedup"] == {"ttl_seconds": 21600, "cleanup_interval_seconds": 300}
    assert config["kafka"]["state_committed_topic"] == "omninode_bridge.onex.evt.state-committed.v1"
    assert config["projection"]["consumer_group"] == "projection-materializer"
    assert config["projection"]["enable_idempotence"] is True
    assert config["server"]["max_message_bytes"] == 1048576
    # Credentials never go into the ConfigMap.
    assert "database_url" not in config.get("storage", {})


def test_config_map_follows_values() -> None:
    config = config_toml(render({
        "config": {
            "reducer": {"max_attempts": 5, "backoff_cap_ms": 500},
            "telemetry": {"otlp_endpoint": "http://collector:4317"},
            "workflowTypes": {
                "order": {"reducer": "fsm", "initial": "PENDING",
                          "transitions": [{"from": "PENDING", "to": "PROCESSING"},
                                          {"from": "PENDING", "to": "FAILED", "on": "fail"}]},
                "pricing.v2": {"reducer": "remote", "endpoint": "http://pricing:50052", "timeout_ms": 200},
            },
        }
    }))
    assert config["reducer"]["max_attempts"] == 5
    assert config["reducer"]["backoff_cap_ms"] == 500
    assert config["telemetry"]["otlp_endpoint"] == "http://collector:4317"
    assert config["workflow_types"]["order"] == {
        "reducer": "fsm", "initial": "PENDING",
        "transitions": [{"from": "PENDING", "to": "PROCESSING"}, {"from": "PENDING", "to": "FAILED", "on": "fail"}],
    }
    assert config["workflow_types"]["pricing.v2"] == {"reducer": "remote", "endpoint": "http://pricing:50052", "timeout_ms": 200}


@pytest.mark.parametrize(
    ("workflow_type", "message"),
    [
        ({"reducer": "magic"}, "config.workflowTypes.bad.reducer must be one of"),
        ({"reducer": "remote"}, "config.workflowTypes.bad: a remote reducer needs an endpoint"),
    ],
)
def test_invalid_workflow_types_fail_the_render(workflow_type: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        render({"config": {"workflowTypes": {"bad": workflow_type}}})


def test_config_change_rolls_the_pods() -> None:
    def checksum(objects: list[dict[str, Any]]) -> str:
        deployment = by_component(objects, "Deployment")["reducer-service"]
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(render()) != checksum(render({"config": {"reducer": {"max_attempts": 4}}}))

def test_migration_job_runs_before_install_and_upgrade(objects: list[dict[str, Any]]) -> None:
    (job,) = of_kind(objects, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    deployment = by_component(objects, "Deployment")["reducer-service"]
    assert container["image"] == containers(deployment)[0]["image"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PURE_REDUCER_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == \
        {e["name"]: e for e in containers(deployment)[0]["env"]}["PURE_REDUCER_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    # A hook runs before ordinary objects exist: it must not need the chart's ServiceAccount or
    # ConfigMap, and a chart-made Secret it reads must itself be an earlier hook.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    assert not job["spec"]["template"]["spec"].get("volumes", []) or all(
        "configMap" not in v for v in job["spec"]["template"]["spec"]["volumes"]
    )
    read = {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    read |= {v["secret"]["secretName"] for v in job["spec"]["template"]["spec"].get("volumes", []) if "secret" in v}
    assert read
    for secret in of_kind(objects, "Secret"):
        if secret["metadata"]["name"] not in read:
            continue
        secret_annotations = secret["metadata"]["annotations"]
        assert "pre-install" in secret_annotations["helm.sh/hook"]
        assert int(secret_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
