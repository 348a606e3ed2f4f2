"""Static checks of Pure Reducer's deployment artefacts.

Run through deploy/tests/check-deploy.sh, which installs what these tests need. Nothing here
needs a cluster or a Docker engine:

- the Helm chart (deploy/helm/pure-reducer) lints clean and renders with the default and the
  production values; every rendered object validates against the Kubernetes JSON schemas
  (kubernetes-validate), the Prometheus Operator objects against the parts of their CRDs we
  use; the chart refuses more projection-materializer replicas than Kafka partitions; its
  PrometheusRule carries exactly the groups of deploy/prometheus/rules.yml;
- authentication is on in both: the chart mounts a tokens Secret (the user's, or one it
  generates) where auth.tokens_file points, refuses to render token mode without one when
  generation is off, wires the TLS and CA Secrets into the config, and its ServiceMonitor
  scrapes with a bearer token; the compose stack's tokens file parses and lists the token its
  Prometheus sends;
- the compose stack (deploy/compose) only refers to images, build contexts, ports, files and
  services that exist, and the Prometheus config it mounts passes `promtool check config`;
- the Dockerfile builds reducerd the agreed way and .dockerignore keeps its inputs.

Layout:

- conftest.py: the rendered-chart and compose fixtures every module shares;
- deploy_support.py: paths, constants and helpers (render, selectors, schemas, interpolation);
- test_chart.py: lint, schemas, workloads, the config ConfigMap and the migration hook;
- test_chart_security.py: pod hardening, credentials, the NetworkPolicy, auth tokens, TLS and CAs;
- test_chart_monitoring.py: ServiceMonitor and PrometheusRule, and the synced rules file;
- test_compose.py: the compose stack, its tokens, and the Prometheus, Grafana and collector
  configs it mounts;
- test_image_and_docs.py: Dockerfile, .dockerignore and docs/deploy.md.

live/ is not collected here: it runs a real reducerd and Prometheus, after cargo has built the
binary, through deploy/tests/check-live.sh.
"""

from __future__ import annotations

from typing import Any

import pytest

from deploy_support import COMPOSE_FILE, interpolate, load_yaml, production_values, render

collect_ignore = ["live"]


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
