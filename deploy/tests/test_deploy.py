"""Static checks of Pure Reducer's deployment artefacts.

Run through deploy/tests/check-deploy.sh, which installs what these tests need. Nothing here
needs a cluster or a Docker engine:

- the Helm chart (deploy/helm/pure-reducer) lints clean and renders with the default and the
  production values; every rendered object validates against the Kubernetes JSON schemas
  (kubernetes-validate), the Prometheus Operator objects against the parts of their CRDs we
  use; the chart refuses more projection-materializer replicas than Kafka partitions; its
  PrometheusRule carries exactly the groups of deploy/prometheus/rules.yml;
- the compose stack (deploy/compose) only refers to images, build contexts, ports, files and
  services that exist, and the Prometheus config it mounts passes `promtool check config`;
- the Dockerfile builds reducerd the agreed way and .dockerignore keeps its inputs.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy/helm/pure-reducer"
PRODUCTION_VALUES = CHART / "values-production.yaml"
CHART_RULES = CHART / "files/rules.yml"
RULES = REPO / "deploy/prometheus/rules.yml"
PROMETHEUS_DIR = REPO / "deploy/prometheus"
GRAFANA_DIR = REPO / "deploy/grafana"
COMPOSE_DIR = REPO / "deploy/compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SYNC_RULES = REPO / "deploy/scripts/sync-rules.sh"
DEPLOY_DOC = REPO / "docs/deploy.md"

RELEASE = "pure-reducer"
NAMESPACE = "pure-reducer"
ALL_ROLES = {
    "canonical-store",
    "action-dedup",
    "reducer-service",
    "event-bus",
    "projection-materializer",
}
# Role Deployments of the chart and the --roles each must run.
CHART_COMPONENTS = {
    "reducer-service": {"reducer-service", "action-dedup"},
    "canonical-store": {"canonical-store"},
    "event-bus": {"event-bus"},
    "projection-materializer": {"projection-materializer"},
}
GRPC_PORT = 50051
METRICS_PORT = 8000
# Oldest Kubernetes the chart supports (native gRPC probes are GA there) and the newest the
# schemas know.
KUBE_VERSIONS = ["1.27", kv_utils.major_minor(kv_utils.latest_version())]
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render the chart like `helm template` does and parse every object."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("_template", template)
                objects.append(document)
    return objects


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without the test's bookkeeping key."""
    return {key: value for key, value in obj.items() if key != "_template"}


def production_values() -> dict[str, Any]:
    return load_yaml(PRODUCTION_VALUES)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def by_component(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    found = {component(obj): obj for obj in of_kind(objects, kind)}
    assert len(found) == len(of_kind(objects, kind)), f"two {kind}s share a component label"
    return found


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def roles_of(container: dict[str, Any]) -> set[str]:
    for arg in container.get("args", []):
        if arg.startswith("--roles="):
            return set(arg.removeprefix("--roles=").split(","))
    raise AssertionError(f"container {container['name']} has no --roles= argument")


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector evaluated against a label set."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def definitions(version: str) -> dict[str, Any]:
    return kv_utils.schema_contents(
        f"kubernetes-json-schema/v{version}.0-local-strict/_definitions.json", version
    )


def validate_definition(instance: Any, definition: str, version: str = KUBE_VERSIONS[-1]) -> None:
    """Validate part of a custom resource against a core Kubernetes type (ObjectMeta, ...)."""
    defs = definitions(version)
    registry = Resource.from_contents(defs) @ Registry()
    schema = {"$ref": f"{defs['$id']}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(instance)


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose-style ${VAR}, ${VAR-default}, ${VAR:-default} substitution (env empty by default)."""
    env = env or {}
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, op, default = match.group(1), match.group(2), match.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", substitute, value)
    return value.replace("$$", "$")


@pytest.fixture(scope="session")
def default_objects() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def production_objects() -> list[dict[str, Any]]:
    return render(production_values())


@pytest.fixture(params=["default", "production"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return request.getfixturevalue(f"{request.param}_objects")


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return interpolate(load_yaml(COMPOSE_FILE))


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


# ---------------------------------------------------------------------------------------------
# Helm chart
# ---------------------------------------------------------------------------------------------


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


def test_monitoring_objects_follow_their_toggles(
    default_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    assert not of_kind(default_objects, "ServiceMonitor")
    assert not of_kind(default_objects, "PrometheusRule")
    assert len(of_kind(production_objects, "ServiceMonitor")) == 1
    assert len(of_kind(production_objects, "PrometheusRule")) == 1
    assert production_values()["serviceMonitor"]["enabled"] is True
    assert production_values()["prometheusRule"]["enabled"] is True


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    objects: list[dict[str, Any]], kube_version: str
) -> None:
    checked = 0
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue  # no schema ships with kubernetes-validate: see the CRD tests below
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


DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# The fields of the Prometheus Operator CRDs (monitoring.coreos.com/v1) that the chart uses,
# with the operator's own constraints; anything else is rejected so a typo cannot slip through.
PROMETHEUS_RULE_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "query_offset": {"type": "string", "pattern": DURATION},
                    "limit": {"type": "integer"},
                    "labels": LABEL_MAP,
                    "partial_response_strategy": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["expr"],
                            "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
                            "properties": {
                                "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                                "alert": {"type": "string", "minLength": 1},
                                "expr": {"type": ["string", "integer"]},
                                "for": {"type": "string", "pattern": DURATION},
                                "keep_firing_for": {"type": "string", "pattern": DURATION},
                                "labels": LABEL_MAP,
                                "annotations": LABEL_MAP,
                            },
                        },
                    },
                },
            },
        }
    },
}
SERVICE_MONITOR_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": {"type": "object"},  # a LabelSelector, checked against the core schema
        "namespaceSelector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
        },
        "jobLabel": {"type": "string"},
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["port"],
                "properties": {
                    "port": {"type": "string", "minLength": 1},
                    "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                    "interval": {"type": "string", "pattern": DURATION},
                    "scrapeTimeout": {"type": "string", "pattern": DURATION},
                    "honorLabels": {"type": "boolean"},
                    "relabelings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "sourceLabels": {
                                    "type": "array",
                                    "items": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"},
                                },
                                "targetLabel": {"type": "string"},
                                "regex": {"type": "string"},
                                "replacement": {"type": "string"},
                                "separator": {"type": "string"},
                                "action": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def test_custom_resources_are_well_formed(production_objects: list[dict[str, Any]]) -> None:
    custom = [o for o in production_objects if (o["apiVersion"], o["kind"]) in CUSTOM_RESOURCES]
    assert {o["kind"] for o in custom} == {"ServiceMonitor", "PrometheusRule"}
    for obj in custom:
        assert set(strip(obj)) == {"apiVersion", "kind", "metadata", "spec"}
        validate_definition(obj["metadata"], "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        # The release label that kube-prometheus-stack selects by must reach both objects.
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    (rule,) = of_kind(custom, "PrometheusRule")
    jsonschema.validate(rule["spec"], PROMETHEUS_RULE_SPEC)

    (monitor,) = of_kind(custom, "ServiceMonitor")
    jsonschema.validate(monitor["spec"], SERVICE_MONITOR_SPEC)
    validate_definition(monitor["spec"]["selector"], "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # The monitor must find every role's Service, and each must have the named metrics port.
    selected = [
        svc for svc in of_kind(production_objects, "Service")
        if selector_matches(monitor["spec"]["selector"], svc["metadata"]["labels"])
    ]
    assert {component(svc) for svc in selected} == set(CHART_COMPONENTS)
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        for svc in selected:
            ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
            assert ports.get(endpoint["port"]) == METRICS_PORT


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
    for deployment in of_kind(objects, "Deployment"):
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["grpc"] == {"port": GRPC_PORT}, (component(deployment), probe)


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
                           "event_bus", "telemetry", "workflow_types"}
    assert config["server"]["listen"] == f"0.0.0.0:{GRPC_PORT}"
    assert config["server"]["metrics_listen"] == f"0.0.0.0:{METRICS_PORT}"
    # Integers stay integers (Helm reads values as floats; reducerd rejects 3.0 for a count).
    assert config["reducer"] == {"max_attempts": 3, "backoff_base_ms": 10, "backoff_cap_ms": 250}
    for table in config.values():
        for key, value in table.items():
            assert not isinstance(value, float), f"{key} = {value!r} was written as a float"
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
    for secret in of_kind(objects, "Secret"):
        secret_annotations = secret["metadata"]["annotations"]
        assert "pre-install" in secret_annotations["helm.sh/hook"]
        assert int(secret_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])


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


def rule_groups(path: Path) -> list[dict[str, Any]]:
    groups = load_yaml(path)["groups"]
    assert groups, f"{path} has no rule groups"
    return groups


def test_chart_rules_file_matches_prometheus_rules() -> None:
    assert rule_groups(CHART_RULES) == rule_groups(RULES), (
        "deploy/helm/pure-reducer/files/rules.yml is stale: run deploy/scripts/sync-rules.sh"
    )


def test_prometheus_rule_groups_equal_rules_file(production_objects: list[dict[str, Any]]) -> None:
    (rule,) = of_kind(production_objects, "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups(RULES)


def test_sync_rules_script_copies_and_checks(tmp_path: Path) -> None:
    assert os.access(SYNC_RULES, os.X_OK)
    src, dest = tmp_path / "rules.yml", tmp_path / "chart/files/rules.yml"
    src.write_text("groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: up\n")
    env = {**os.environ, "SYNC_RULES_SRC": str(src), "SYNC_RULES_DEST": str(dest)}
    run = lambda *args: subprocess.run([str(SYNC_RULES), *args], env=env, capture_output=True, text=True, cwd="/")
    assert run("--check").returncode != 0
    assert run().returncode == 0
    assert dest.read_text() == src.read_text()
    assert run("--check").returncode == 0
    src.write_text(src.read_text() + "      - record: c:d\n        expr: up\n")
    assert run("--check").returncode != 0


# ---------------------------------------------------------------------------------------------
# Compose stack
# ---------------------------------------------------------------------------------------------

COMPOSE_SERVICES = {"postgres", "kafka", "canonical-store", "reducer-service", "projection-materializer",
                    "event-bus", "migrate", "otel-collector", "prometheus", "grafana"}
REDUCERD_SERVICES = {"canonical-store", "reducer-service", "projection-materializer", "event-bus"}


def parse_port(spec: Any) -> tuple[str, list[int], list[int]]:
    """(host ip, host ports, container ports) of a short- or long-syntax port mapping."""
    if isinstance(spec, dict):
        host = str(spec.get("published", ""))
        return spec.get("host_ip", ""), _port_range(host) if host else [], _port_range(str(spec["target"]))
    parts = str(spec).split("/")[0].split(":")
    if len(parts) == 3:
        ip, host, container = parts
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    else:
        ip, host, container = "", "", parts[0]
    return ip, _port_range(host) if host else [], _port_range(container)


def _port_range(text: str) -> list[int]:
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    assert match, f"bad port {text!r}"
    start, end = int(match.group(1)), int(match.group(2) or match.group(1))
    assert 0 < start <= end < 65536, f"bad port range {text!r}"
    return list(range(start, end + 1))


def published(service: dict[str, Any]) -> list[tuple[str, list[int], list[int]]]:
    return [parse_port(spec) for spec in service.get("ports", [])]


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of every bind mount; named volumes are skipped."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        source, _, rest = volume.partition(":")
        if source.startswith((".", "/", "~")):
            yield source, rest.split(":")[0]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_has_the_runbook_services(compose: dict[str, Any]) -> None:
    assert compose["name"] == "pure-reducer"
    assert COMPOSE_SERVICES <= set(compose["services"])
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, name


def test_compose_build_contexts_exist(compose: dict[str, Any]) -> None:
    built = [s for s in compose["services"].values() if "build" in s]
    assert built
    for service in built:
        build = service["build"] if isinstance(service["build"], dict) else {"context": service["build"]}
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context.is_dir(), context
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), dockerfile
        assert dockerfile.resolve() == DOCKERFILE


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        if image is None:
            continue
        assert re.fullmatch(r"[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+", image), f"{name}: {image}"
        assert not image.endswith(":latest"), f"{name}: pin a version, not {image}"


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    mounts = [(name, src, dst) for name, s in compose["services"].items() for src, dst in bind_mounts(s)]
    assert mounts
    for name, source, _ in mounts:
        assert (COMPOSE_DIR / source).exists(), f"{name}: bind-mounted {source} does not exist"
    named = {src.partition(":")[0] for s in compose["services"].values() for src in s.get("volumes", [])
             if isinstance(src, str) and not src.startswith((".", "/", "~"))}
    assert named <= set(compose.get("volumes") or {}), named


def test_compose_host_ports_do_not_collide(compose: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, service in compose["services"].items():
        for ip, host, container in published(service):
            assert ip == "127.0.0.1", f"{name}: publish on 127.0.0.1 only"
            assert host, f"{name}: give every published port a host port"
            assert len(host) >= len(container)
            for port in host:
                assert port not in seen, f"host port {port} used by {seen.get(port)} and {name}"
                seen[port] = name


def host_port_map(compose: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """host port -> (service, container port) for the first replica of each mapping."""
    mapping = {}
    for name, service in compose["services"].items():
        for _, host, container in published(service):
            mapping[host[0]] = (name, container[0])
    return mapping


def test_compose_ports_match_the_runbook(compose: dict[str, Any]) -> None:
    ports = host_port_map(compose)
    assert ports[8000] == ("reducer-service", METRICS_PORT)  # curl http://localhost:8000/metrics
    assert ports[GRPC_PORT] == ("reducer-service", GRPC_PORT)
    assert ports[29092] == ("kafka", 29092)
    assert ports[9090] == ("prometheus", 9090)
    assert ports[3000] == ("grafana", 3000)
    assert ports[5432] == ("postgres", 5432)
    # Every role's metrics and gRPC ports are reachable from the host.
    for name in REDUCERD_SERVICES:
        targets = {port for _, _, ports in published(compose["services"][name]) for port in ports}
        assert targets == {GRPC_PORT, METRICS_PORT}, name
    # Scaled roles publish a range wide enough for their replicas; the materializer's is the
    # partition count.
    partitions = tomllib.loads((COMPOSE_DIR / "reducerd.toml").read_text())["kafka"]["partitions"]
    materializer = published(compose["services"]["projection-materializer"])
    assert all(len(host) == partitions for _, host, _ in materializer)


def test_compose_dependencies_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        depends = service.get("depends_on", {})
        for dependency in depends if isinstance(depends, list) else depends.keys():
            assert dependency in compose["services"], f"{name} depends on unknown {dependency}"
    for name in REDUCERD_SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_compose_container_names_follow_the_runbook(compose: dict[str, Any], compose_raw: dict[str, Any]) -> None:
    names = {name: s.get("container_name") for name, s in compose["services"].items()}
    assert names["reducer-service"] == "reducer-service"
    assert names["projection-materializer"] == "projection-materializer"
    assert names["event-bus"] == "orchestrator"  # `docker logs orchestrator` in the runbook
    given = [n for n in names.values() if n]
    assert len(given) == len(set(given))
    # The runbook scales these two: their fixed names must be removable with an empty variable.
    for service, variable in (("reducer-service", "REDUCER_SERVICE_CONTAINER_NAME"),
                              ("projection-materializer", "PROJECTION_MATERIALIZER_CONTAINER_NAME")):
        scaled = interpolate(compose_raw, {variable: ""})["services"][service]
        assert not scaled.get("container_name"), service
    # Scaling needs host port ranges, not single ports.
    for service in ("reducer-service", "projection-materializer"):
        assert all(len(host) > 1 for _, host, _ in published(compose["services"][service]))


def test_compose_roles_cover_every_service(compose: dict[str, Any]) -> None:
    covered: set[str] = set()
    for name in REDUCERD_SERVICES:
        service = compose["services"][name]
        assert service["image"] == compose["services"]["migrate"]["image"]
        roles = set(env_of(service)["PURE_REDUCER_ROLES"].split(","))
        assert roles <= ALL_ROLES, roles
        covered |= roles
        env = env_of(service)
        assert env["PURE_REDUCER_KAFKA_BROKERS"] == "kafka:9092"
        assert env["PURE_REDUCER_CONFIG"] == "/etc/pure-reducer/config.toml"
        assert any(dst == env["PURE_REDUCER_CONFIG"] for _, dst in bind_mounts(service))
    assert covered == ALL_ROLES
    assert "action-dedup" in env_of(compose["services"]["reducer-service"])["PURE_REDUCER_ROLES"]
    assert compose["services"]["migrate"]["command"] == ["migrate"]
    assert compose["services"]["migrate"]["restart"] == "no"


def test_compose_database_is_the_runbooks(compose: dict[str, Any]) -> None:
    postgres = env_of(compose["services"]["postgres"])
    assert postgres["POSTGRES_DB"] == "omninode_bridge"
    assert postgres["POSTGRES_USER"] == "postgres"
    for name in REDUCERD_SERVICES | {"migrate"}:
        url = env_of(compose["services"][name])["PURE_REDUCER_DATABASE_URL"]
        assert re.fullmatch(r"postgres://postgres@postgres:5432/omninode_bridge", url), (name, url)


def test_compose_kafka_runs_kraft_with_a_host_listener(compose: dict[str, Any]) -> None:
    assert not any("zookeeper" in name for name in compose["services"])
    env = env_of(compose["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT_HOST://localhost:29092" in advertised
    assert "PLAINTEXT://kafka:9092" in advertised
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    assert listeners["PLAINTEXT_HOST"].endswith(":29092")
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    # kafka-init creates the state-committed topic with the partitions reducerd is told about.
    config = tomllib.loads((COMPOSE_DIR / "reducerd.toml").read_text())
    command = compose["services"]["kafka-init"]["command"]
    assert command[command.index("--topic") + 1] == config["kafka"]["state_committed_topic"]
    assert int(command[command.index("--partitions") + 1]) == config["kafka"]["partitions"]
    assert int(env["KAFKA_NUM_PARTITIONS"]) == config["kafka"]["partitions"]


def test_compose_reducerd_config_is_valid_toml() -> None:
    config = tomllib.loads((COMPOSE_DIR / "reducerd.toml").read_text())
    assert set(config) <= {"server", "storage", "reducer", "dedup", "kafka", "projection",
                           "event_bus", "telemetry", "workflow_types"}
    assert config["server"]["metrics_listen"].endswith(f":{METRICS_PORT}")
    assert config["server"]["listen"].endswith(f":{GRPC_PORT}")
    assert config["projection"]["consumer_group"] == "projection-materializer"
    assert config["storage"]["min_pool_size"] <= config["storage"]["max_pool_size"]


def test_otel_collector_config_is_consistent(compose: dict[str, Any]) -> None:
    collector = compose["services"]["otel-collector"]
    ((source, target),) = list(bind_mounts(collector))
    assert (COMPOSE_DIR / source).resolve() == COMPOSE_DIR / "otel-collector.yaml"
    assert f"--config={target}" in collector["command"]
    config = load_yaml(COMPOSE_DIR / "otel-collector.yaml")
    pipelines = config["service"]["pipelines"]
    assert {"traces", "metrics"} <= set(pipelines)
    for pipeline in pipelines.values():
        for section in ("receivers", "processors", "exporters"):
            for item in pipeline.get(section, []):
                assert item in config[section], f"{item} is not defined under {section}"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]
    for name, exporter in config["exporters"].items():
        endpoint = exporter.get("endpoint") if isinstance(exporter, dict) else None
        if endpoint:
            assert endpoint.split(":")[0] in compose["services"], name
    grpc_endpoint = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    for name in REDUCERD_SERVICES:
        assert env_of(compose["services"][name])["OTEL_EXPORTER_OTLP_ENDPOINT"] == \
            f"http://otel-collector:{grpc_endpoint.rsplit(':', 1)[1]}"


def prometheus_service(compose: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    service = compose["services"]["prometheus"]
    mounts = dict((dst, src) for src, dst in bind_mounts(service))
    assert (COMPOSE_DIR / mounts["/etc/prometheus"]).resolve() == PROMETHEUS_DIR
    config_flag = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    config_path = Path(config_flag.split("=", 1)[1])
    assert config_path.parent == Path("/etc/prometheus")
    return service, PROMETHEUS_DIR / config_path.name


def test_prometheus_config_passes_promtool(compose: dict[str, Any], tmp_path: Path) -> None:
    _, config = prometheus_service(compose)
    assert config.is_file(), f"{config} (written with deploy/prometheus) is missing"
    # Check the files as the container sees them: deploy/prometheus mounted at /etc/prometheus.
    mounted = tmp_path / "etc-prometheus"
    shutil.copytree(PROMETHEUS_DIR, mounted)
    for path in mounted.rglob("*.y*ml"):
        path.write_text(path.read_text().replace("/etc/prometheus/", f"{mounted}/"))
    result = subprocess.run(
        ["promtool", "check", "config", str(mounted / config.name)],
        capture_output=True, text=True, cwd=mounted,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_scrapes_compose_services(compose: dict[str, Any]) -> None:
    _, config_path = prometheus_service(compose)
    config = load_yaml(config_path)
    targets: list[tuple[str, int]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                targets.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            targets += [(name, int(dns["port"])) for name in dns["names"]]
    hosts = {host for host, _ in targets}
    assert REDUCERD_SERVICES <= hosts, f"Prometheus does not scrape {REDUCERD_SERVICES - hosts}"
    for host, port in targets:
        if host in ("localhost", "127.0.0.1"):
            continue
        assert host in compose["services"], f"scrape target {host} is not a compose service"
        if host in REDUCERD_SERVICES:
            assert port == METRICS_PORT


def test_grafana_provisioning_matches_the_mounts(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {dst: (COMPOSE_DIR / src).resolve() for src, dst in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DIR / "provisioning"
    providers = list((GRAFANA_DIR / "provisioning/dashboards").glob("*.y*ml"))
    datasources = list((GRAFANA_DIR / "provisioning/datasources").glob("*.y*ml"))
    assert providers and datasources, "deploy/grafana/provisioning is incomplete"
    for provider_file in providers:
        for provider in load_yaml(provider_file).get("providers", []):
            path = Path(provider["options"]["path"])
            host = next((root / path.relative_to(dst) for dst, root in mounts.items()
                         if path.is_relative_to(dst)), None)
            assert host is not None and host.exists(), f"dashboard path {path} is not mounted from the repo"
    urls = [ds.get("url", "") for f in datasources for ds in load_yaml(f).get("datasources", [])]
    assert any(re.fullmatch(r"https?://prometheus:9090/?", url) for url in urls), urls
    uids = set()
    for dashboard in (GRAFANA_DIR / "dashboards").rglob("*.json"):
        uids.add(yaml.safe_load(dashboard.read_text()).get("uid"))
    assert "pure-reducer-6c" in uids
    assert host_port_map(compose)[3000] == ("grafana", 3000)


# ---------------------------------------------------------------------------------------------
# Container image
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def test_dockerfile_builds_reducerd_in_stages() -> None:
    instructions = dockerfile_instructions()
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert froms[0] == "rust:1.95-bookworm AS builder"
    assert froms[-1].startswith("debian:bookworm-slim")
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "cargo build --release --locked -p reducerd" in runs
    assert "ca-certificates" in runs
    user = [args for keyword, args in instructions if keyword == "USER"][-1]
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER must be a numeric non-root id, got {user}"
    assert user.split(":")[0] == str(load_yaml(CHART / "values.yaml")["podSecurityContext"]["runAsUser"])
    entrypoint = [args for keyword, args in instructions if keyword == "ENTRYPOINT"][-1]
    assert re.fullmatch(r'\["(/usr/local/bin/)?reducerd"\]', entrypoint), entrypoint
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert any("--from=builder" in args and "reducerd" in args for args in copies)
    assert any(re.search(r"(^|\s)migrations/?\s", args) for args in copies)
    exposed = {int(p) for keyword, args in instructions if keyword == "EXPOSE" for p in args.split()}
    assert exposed == {GRPC_PORT, METRICS_PORT}


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns we use (last match wins, ! negates)."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) or (pattern.startswith("**/") and
               fnmatch.fnmatch(prefix.split("/")[-1], pattern[3:])) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_build_inputs_and_drops_the_rest() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "services/reducerd/Cargo.toml", "proto", "migrations/postgres"):
        assert not dockerignored(needed, patterns), needed
        assert (REPO / needed).exists(), f"{needed} is a build input but does not exist"
    for dropped in ("target/release/reducerd", ".git/HEAD", ".tools/venv", "services/api/target/x",
                    "clients/ts/node_modules/x"):
        assert dockerignored(dropped, patterns), dropped
    for keyword, args in dockerfile_instructions():
        if keyword == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                if source != ".":
                    assert (REPO / source).exists() and not dockerignored(source.rstrip("/"), patterns), source


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------


def test_deploy_doc_points_at_real_files() -> None:
    text = DEPLOY_DOC.read_text()
    paths = set(re.findall(r"`((?:deploy|docs)/[A-Za-z0-9_./-]+|Dockerfile|\.dockerignore)`", text))
    assert len(paths) >= 5
    for path in paths:
        assert (REPO / path.rstrip("/")).exists(), f"docs/deploy.md mentions missing {path}"
    for needed in ("helm upgrade --install", "docker compose", "--scale", "reducerd migrate", "partitions"):
        assert needed in text, needed
