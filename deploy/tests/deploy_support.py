"""Paths, constants and helpers shared by the deploy test modules.

A plain module rather than conftest.py because the test modules import these names: pytest
loads conftest.py itself and it is not meant to be imported. Fixtures live in conftest.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
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


def render_notes(values: dict[str, Any] | None = None) -> str:
    """The chart's NOTES.txt as `helm install` prints it."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    (notes,) = [text for template, text in manifests.items() if template.endswith("NOTES.txt")]
    return notes


def secret_file(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) that the file `path` in `container` is mounted from.

    Fails unless the file comes from a whole Secret volume: a subPath mount never sees the
    kubelet's updates, so reducerd could not reload a rotated token or certificate.
    """
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: len(m["mountPath"]), reverse=True)
    for mount in mounts:
        directory = mount["mountPath"].rstrip("/")
        if not path.startswith(directory + "/"):
            continue
        assert "subPath" not in mount and "subPathExpr" not in mount, f"{path}: mounted with subPath"
        assert mount.get("readOnly") is True, f"{path}: mount {mount['name']} is writable"
        secret = volumes[mount["name"]].get("secret")
        assert secret is not None, f"{path}: volume {mount['name']} is not a Secret"
        relative = path[len(directory) + 1:]
        items = {item["path"]: item["key"] for item in secret.get("items", [])}
        if items:
            assert relative in items, f"{path}: Secret {secret['secretName']} does not project {relative}"
            return secret["secretName"], items[relative]
        return secret["secretName"], relative
    raise AssertionError(f"{path} is not on any volume of container {container['name']}")


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
