"""The compose stack (deploy/compose) refers only to images, build contexts, ports, files and
services that exist, matches the runbook, and the Prometheus, Grafana and OpenTelemetry
collector configs it mounts are consistent with it (`promtool check config` included). Its
reducerd services run with auth.mode = "token", their tokens file parses the way reducerd
reads it, and Prometheus scrapes with a token listed there."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, Iterator

import yaml

from deploy_support import (
    ALL_ROLES,
    COMPOSE_DIR,
    DEPLOY_DOC,
    DOCKERFILE,
    GRAFANA_DIR,
    GRPC_PORT,
    METRICS_PORT,
    PROMETHEUS_DIR,
    interpolate,
    load_yaml,
)

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


def host_path(service: dict[str, Any], path: str) -> tuple[Path, bool]:
    """The host file behind container path `path`, and whether its mount is a directory mount
    that is read-only."""
    best: tuple[str, str, bool] | None = None
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target, readonly = volume["source"], volume["target"], bool(volume.get("read_only"))
        else:
            source, _, rest = volume.partition(":")
            if not source.startswith((".", "/", "~")):
                continue
            target, _, options = rest.partition(":")
            readonly = "ro" in options.split(",")
        target = target.rstrip("/")
        if (path == target or path.startswith(target + "/")) and (best is None or len(target) > len(best[1])):
            best = (source, target, readonly)
    assert best is not None, f"{path} is not bind-mounted"
    source, target, readonly = best
    host = (COMPOSE_DIR / source).resolve()
    if path != target:
        assert host.is_dir(), f"{source} is mounted at {target} but is not a directory"
        host = host / path[len(target) + 1:]
    return host, readonly and path != target


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
                           "event_bus", "telemetry", "workflow_types", "auth"}
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
# Authentication in the compose stack.
# ---------------------------------------------------------------------------------------------
TOKENS_FILE = COMPOSE_DIR / "auth/tokens.toml"
DEV_ADMIN_TOKEN = "pure-reducer-dev-admin-token"


def listed_tokens(path: Path) -> dict[str, dict[str, Any]]:
    """sha256 -> [[token]] entry of a tokens file, checked the way reducerd reads it."""
    found: dict[str, dict[str, Any]] = {}
    for entry in tomllib.loads(path.read_text())["token"]:
        assert set(entry) == {"sha256", "subject", "namespaces", "roles"}, entry
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), f"{entry['subject']}: sha256 {entry['sha256']!r}"
        assert entry["subject"].strip()
        assert entry["namespaces"] and all(isinstance(n, str) and n for n in entry["namespaces"])
        assert entry["roles"] and set(entry["roles"]) <= {"reader", "writer", "admin"}, entry["roles"]
        assert entry["sha256"] not in found, f"{entry['subject']}: the same token is listed twice"
        found[entry["sha256"]] = entry
    return found


def test_compose_reducerd_requires_tokens(compose: dict[str, Any]) -> None:
    config = tomllib.loads((COMPOSE_DIR / "reducerd.toml").read_text())
    assert config["auth"]["mode"] == "token"
    tokens_file = config["auth"]["tokens_file"]
    for name in REDUCERD_SERVICES:
        service = compose["services"][name]
        env = env_of(service)
        # Nothing in the environment turns authentication back off.
        assert env.get("PURE_REDUCER_AUTH_MODE", "token") == "token", name
        assert env.get("PURE_REDUCER_AUTH_TOKENS_FILE", tokens_file) == tokens_file, name
        host, directory_ro = host_path(service, tokens_file)
        assert host == TOKENS_FILE, (name, host)
        # A read-only directory mount: edits on the host reach the container, which a
        # single-file bind mount does not guarantee.
        assert directory_ro, f"{name}: mount the tokens directory read-only, not the file"


def test_compose_tokens_file_holds_development_tokens() -> None:
    tokens = listed_tokens(TOKENS_FILE)
    assert len(tokens) >= 2
    admin = tokens[hashlib.sha256(DEV_ADMIN_TOKEN.encode()).hexdigest()]
    assert admin["roles"] == ["admin"] and admin["namespaces"] == ["*"]
    text = TOKENS_FILE.read_text()
    assert "DEVELOPMENT TOKENS ONLY" in text and "Replace" in text
    assert DEV_ADMIN_TOKEN in DEPLOY_DOC.read_text()


def test_prometheus_scrapes_reducerd_with_a_listed_token(compose: dict[str, Any]) -> None:
    service, config_path = prometheus_service(compose)
    config = load_yaml(config_path)
    tokens = listed_tokens(TOKENS_FILE)
    checked = set()
    for job in config["scrape_configs"]:
        hosts = {name for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
        hosts |= {target.rpartition(":")[0] for static in job.get("static_configs", []) for target in static["targets"]}
        if not hosts & REDUCERD_SERVICES:
            continue
        auth = job.get("authorization")
        assert auth, f"job {job['job_name']} scrapes reducerd without a bearer token"
        assert auth.get("type", "Bearer") == "Bearer"
        assert "bearer_token" not in job and "bearer_token_file" not in job
        if "credentials_file" in auth:
            path = auth["credentials_file"]
            container = path if path.startswith("/") else f"/etc/prometheus/{path}"
            host, _ = host_path(service, container)
            token = host.read_text().strip()  # Prometheus trims the file's whitespace
        else:
            token = auth["credentials"]
        assert token
        entry = tokens.get(hashlib.sha256(token.encode()).hexdigest())
        assert entry, f"job {job['job_name']}: its token is not listed in {TOKENS_FILE.name}"
        assert entry["roles"], "a token without a role gets 403 from /metrics"
        checked |= hosts & REDUCERD_SERVICES
    assert checked == REDUCERD_SERVICES
