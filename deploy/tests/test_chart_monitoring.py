"""The chart's Prometheus Operator objects: they follow their toggles, are well formed against
the CRD fields we use, select every role's metrics port, and carry exactly the rule groups of
deploy/prometheus/rules.yml (kept in sync by deploy/scripts/sync-rules.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema

from deploy_support import (
    CHART_COMPONENTS,
    CHART_RULES,
    CUSTOM_RESOURCES,
    METRICS_PORT,
    NAMESPACE,
    RULES,
    SYNC_RULES,
    component,
    load_yaml,
    of_kind,
    production_values,
    selector_matches,
    strip,
    validate_definition,
)


def test_monitoring_objects_follow_their_toggles(
    default_objects: list[dict[str, Any]], production_objects: list[dict[str, Any]]
) -> None:
    assert not of_kind(default_objects, "ServiceMonitor")
    assert not of_kind(default_objects, "PrometheusRule")
    assert len(of_kind(production_objects, "ServiceMonitor")) == 1
    assert len(of_kind(production_objects, "PrometheusRule")) == 1
    assert production_values()["serviceMonitor"]["enabled"] is True
    assert production_values()["prometheusRule"]["enabled"] is True


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
                    # SafeAuthorization: the credentials come from a Secret in the monitor's
                    # namespace, never inline.
                    "authorization": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["credentials"],
                        "properties": {
                            "type": {"type": "string", "minLength": 1},
                            "credentials": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["key"],
                                "properties": {
                                    "name": {"type": "string", "minLength": 1},
                                    "key": {"type": "string", "minLength": 1},
                                    "optional": {"type": "boolean"},
                                },
                            },
                        },
                    },
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
