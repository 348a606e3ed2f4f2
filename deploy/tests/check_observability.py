#!/usr/bin/env python3
"""Cross-checks of deploy/prometheus and deploy/grafana against the operations runbook.

    check_observability.py --list    names of the checks
    check_observability.py NAME      run one check: exit 0 if it holds, 1 with reasons if not

Called by deploy/tests/check-observability.sh, which also runs promtool and counts results.
promtool proves the rules are valid and behave as their unit tests say; these checks prove
they are the *runbook's* rules: its metric names, its PromQL on the dashboard, its thresholds
and severities. Needs PyYAML (the shell script provides it in .tools/venv).

The runbook is read from $RUNBOOK, or else from ../shared/reference/operations-runbook.md
beside the repository (where the project's sessions and CI find it).
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yml"
RULES_TEST = ROOT / "deploy/prometheus/tests/rules_test.yml"
PROM_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/pure-reducer.json"
GENERATOR = ROOT / "deploy/grafana/generate.py"
DATASOURCE = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
PROVIDER = ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml"

DASHBOARD_UID = "pure-reducer-6c"
DASHBOARD_TITLE = "Pure Reducer"
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

# The compose services that expose :8000/metrics (the runbook's endpoint).
SCRAPED_SERVICES = ["canonical-store", "reducer-service", "projection-materializer", "event-bus"]

# Which recording rule measures each row of the runbook's SLA table. A new row in the table
# fails the check until it is mapped here (and has a rule, an alert and a panel).
SLA_RECORDINGS = {
    "Commit Latency (p95)": "pure_reducer:commit_latency_ms:p95_5m",
    "Projection Lag": "pure_reducer:projection_lag_ms:max",
    "Conflict Rate": "pure_reducer:conflict_rate:ratio_5m",
    "Success Rate": "pure_reducer:success_rate:ratio_5m",
    "Event Timeout Rate": "pure_reducer:event_timeout_rate:ratio_5m",
}

# The runbook's metrics all start with one of its five services' prefixes; this tells metric
# names apart from config knobs (backoff_cap_ms) and SQL names in the same code spans.
METRIC_RE = re.compile(
    r"(?<![\w:])(?:canonical_store|reducer|projection_materializer|action_dedup|event_bus)_[a-z0-9_]*[a-z0-9]"
)


class CheckFailed(Exception):
    pass


def fail_if(problems):
    if problems:
        raise CheckFailed("\n".join(problems))


# --------------------------------------------------------------------------------------------
# Runbook parsing
# --------------------------------------------------------------------------------------------

def runbook_path():
    env = os.environ.get("RUNBOOK")
    return Path(env) if env else ROOT.parent / "shared/reference/operations-runbook.md"


def runbook_text():
    path = runbook_path()
    if not path.is_file():
        raise CheckFailed(f"runbook not found at {path} (set RUNBOOK=/path/to/operations-runbook.md)")
    return path.read_text(encoding="utf-8")


def section(text, title):
    """Body of the `## title` section, up to the next `## ` heading."""
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        raise CheckFailed(f"runbook has no '## {title}' section")
    return m.group(1)


def fenced_blocks(text, lang):
    return re.findall(rf"^```{lang}\s*\n(.*?)^```", text, re.M | re.S)


def _open_parens(expr):
    return expr.count("(") - expr.count(")")


def promql_expressions(block):
    """Expressions of a ```promql block: one per line, except that a line ending in a binary
    operator or leaving a parenthesis open continues on the next line (the runbook's
    multi-line conflict-rate query). Comment lines are skipped."""
    exprs, current = [], ""
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line}".strip()
        if _open_parens(current) > 0 or re.search(r"(?:[-+*/^%]|\b(?:and|or|unless))$", current):
            continue
        exprs.append(current)
        current = ""
    if current:
        exprs.append(current)
    return exprs


def key_metrics_expressions(text):
    exprs = []
    for block in fenced_blocks(section(text, "Key Metrics"), "promql"):
        exprs.extend(promql_expressions(block))
    if not exprs:
        raise CheckFailed("no PromQL found in the runbook's Key Metrics section")
    return exprs


def all_runbook_promql(text):
    """Every piece of PromQL in the runbook: ```promql blocks, inline `code` spans and the
    query= arguments of its curl commands."""
    pieces = []
    for block in fenced_blocks(text, "promql"):
        pieces.extend(promql_expressions(block))
    pieces.extend(re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text))
    pieces.extend(re.findall(r"query=([^'&\s]+)", text))
    return pieces


def runbook_metric_names(text):
    names = set()
    for piece in all_runbook_promql(text):
        names.update(METRIC_RE.findall(piece))
    # A histogram is exported as _bucket, _sum and _count of its base name.
    for name in list(names):
        if name.endswith("_bucket"):
            base = name[: -len("_bucket")]
            names.update({base, base + "_sum", base + "_count"})
    return names


def parse_threshold(cell):
    """'< 10ms' -> ('<', 10.0); '> 10%' -> ('>', 0.1); 'Count > 0' -> ('>', 0.0)."""
    m = re.search(r"([<>])\s*([\d.]+)\s*(ms|%)?", cell)
    if not m:
        raise CheckFailed(f"cannot read a threshold from {cell!r}")
    value = float(m.group(2))
    if m.group(3) == "%":
        value /= 100
    return m.group(1), value


def sla_table(text):
    """{metric: (target, critical)} from the runbook's SLA Targets table."""
    m = re.search(r"^### SLA Targets\s*$(.*?)(?=^#|\Z)", text, re.M | re.S)
    if not m:
        raise CheckFailed("runbook has no '### SLA Targets' table")
    rows = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Metric", "") or set(cells[1]) <= set("-: "):
            continue
        rows[cells[0]] = (parse_threshold(cells[1]), parse_threshold(cells[2]))
    if not rows:
        raise CheckFailed("the runbook's SLA Targets table is empty")
    return rows


def runbook_alerts(text):
    """{AlertName: (severity, threshold)} from '### Alert: Title (threshold)' headings."""
    alerts = {}
    for m in re.finditer(r"^### Alert: (.+?) \((.+?)\)\s*$(.*?)(?=^#|\Z)", text, re.M | re.S):
        title, threshold, body = m.groups()
        severity = re.search(r"\*\*Severity\*\*:\s*(\w+)", body)
        if not severity:
            raise CheckFailed(f"runbook alert {title!r} has no severity")
        name = "".join(word[:1].upper() + word[1:] for word in re.findall(r"[A-Za-z0-9]+", title))
        alerts[name] = (severity.group(1).lower(), parse_threshold(threshold))
    if not alerts:
        raise CheckFailed("no '### Alert:' procedures found in the runbook")
    return alerts


# --------------------------------------------------------------------------------------------
# PromQL helpers
# --------------------------------------------------------------------------------------------

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                   "bool", "and", "or", "unless", "inf", "nan", "atan2"}


def metric_names_in(expr):
    """Metric (and recording rule) names a PromQL expression selects. Label names are
    removed with the matchers and grouping clauses they sit in; functions are the names
    followed by '('."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", e):
        name, is_call = m.group(1), m.group(2)
        if is_call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def squash(expr):
    """Whitespace-insensitive form of a PromQL expression, for comparing runbook and panel."""
    return re.sub(r"\s+", "", expr)


def close(a, b):
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def rules():
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"]]


def alert_rules():
    return {r["alert"]: r for r in rules() if "alert" in r}


def recording_rules():
    return {r["record"]: r for r in rules() if "record" in r}


def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def panels(dash):
    """All panels, including those nested in collapsed rows."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def panel_exprs(panel):
    return [t.get("expr", "") for t in panel.get("targets", [])]


def threshold_values(panel):
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
    return [s["value"] for s in steps if s.get("value") is not None]


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def check_rule_metric_names():
    """Every metric a rule selects is one the runbook names (or a recording rule of ours)."""
    allowed = runbook_metric_names(runbook_text())
    recorded = set(recording_rules())
    problems = []
    for r in rules():
        label = r.get("alert") or r.get("record")
        for name in sorted(metric_names_in(r["expr"])):
            if name not in allowed and name not in recorded:
                problems.append(f"{label}: '{name}' is not a metric name of the runbook")
    for name in recorded:
        if name in allowed or not name.startswith("pure_reducer:"):
            problems.append(f"recording rule {name} should be named pure_reducer:<metric>:<op>")
    fail_if(problems)


def check_alerts_match_runbook():
    """Runbook alert procedures and SLA critical thresholds vs the alert rules: names,
    severities, comparison and threshold."""
    text = runbook_text()
    alerts = alert_rules()
    problems = []

    def compared(rule):
        m = re.fullmatch(r"\s*([\w:]+)\s*([<>])\s*([\d.]+)\s*", rule["expr"])
        return (m.group(1), m.group(2), float(m.group(3))) if m else None

    for name, (severity, (op, value)) in runbook_alerts(text).items():
        rule = alerts.get(name)
        if rule is None:
            problems.append(f"runbook alert {name} has no alert rule")
            continue
        got_severity = rule.get("labels", {}).get("severity")
        if got_severity != severity:
            problems.append(f"{name}: severity {got_severity!r}, runbook says {severity!r}")
        c = compared(rule)
        if c is None:
            problems.append(f"{name}: expr should be '<recording rule> {op} {value:g}'")
        elif c[1] != op or not close(c[2], value):
            problems.append(f"{name}: fires at {c[1]} {c[2]:g}, runbook says {op} {value:g}")

    recorded = recording_rules()
    for metric, (_target, (op, value)) in sla_table(text).items():
        rec = SLA_RECORDINGS.get(metric)
        if rec is None:
            problems.append(f"SLA {metric!r} is not mapped to a recording rule in {Path(__file__).name}")
            continue
        if rec not in recorded:
            problems.append(f"SLA {metric!r}: recording rule {rec} is missing")
        guarding = [(n, compared(r)) for n, r in alerts.items() if compared(r) and compared(r)[0] == rec]
        if not guarding:
            problems.append(f"SLA {metric!r}: no alert compares {rec} with its critical threshold")
        for n, (_, got_op, got_value) in guarding:
            if got_op != op or not close(got_value, value):
                problems.append(f"{n}: fires at {got_op} {got_value:g}, SLA critical is {op} {value:g}")
    fail_if(problems)


def check_alert_annotations():
    """Each alert says what is wrong, how bad, and where the procedure is."""
    problems = []
    for name, rule in alert_rules().items():
        if rule.get("labels", {}).get("severity") not in ("warning", "critical"):
            problems.append(f"{name}: severity label must be warning or critical")
        ann = rule.get("annotations", {})
        for key in ("summary", "description"):
            if not str(ann.get(key, "")).strip():
                problems.append(f"{name}: missing {key} annotation")
        if not re.fullmatch(r"docs/operations\.md#[a-z0-9]+(?:-[a-z0-9]+)*", str(ann.get("runbook", ""))):
            problems.append(f"{name}: runbook annotation must be docs/operations.md#<anchor>")
    fail_if(problems)


def check_rule_test_coverage():
    """rules_test.yml has, for every alert, a case where it fires and one where it does not,
    and evaluates every recording rule."""
    tests = load_yaml(RULES_TEST)
    fires, silent, exprs = set(), set(), []
    for group in tests.get("tests", []):
        for t in group.get("alert_rule_test", []) or []:
            (fires if t.get("exp_alerts") else silent).add(t["alertname"])
        exprs.extend(t["expr"] for t in group.get("promql_expr_test", []) or [])
    problems = []
    for name in alert_rules():
        if name not in fires:
            problems.append(f"{name}: no test case where it fires")
        if name not in silent:
            problems.append(f"{name}: no test case where it stays silent")
    for name in recording_rules():
        if not any(name in metric_names_in(e) for e in exprs):
            problems.append(f"recording rule {name}: no promql_expr_test evaluates it")
    fail_if(problems)


def check_dashboard_generated():
    """The committed JSON is exactly what the generator produces."""
    r = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True)
    fail_if([r.stderr.strip() or "generator --check failed"] if r.returncode else [])


def check_dashboard_structure():
    """The dashboard loads in Grafana as the runbook's link expects it."""
    dash = dashboard()
    problems = []
    if dash.get("uid") != DASHBOARD_UID:
        problems.append(f"uid is {dash.get('uid')!r}, the runbook links /d/{DASHBOARD_UID}")
    if dash.get("title") != DASHBOARD_TITLE:
        problems.append(f"title is {dash.get('title')!r}, expected {DASHBOARD_TITLE!r}")
    if dash.get("id") is not None:
        problems.append("id must be null for a provisioned dashboard")
    variables = [v for v in dash.get("templating", {}).get("list", [])
                 if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if [v.get("name") for v in variables] != ["datasource"]:
        problems.append("expected one Prometheus datasource variable named 'datasource'")
    ids, cells = set(), {}
    for p in panels(dash):
        title = p.get("title", "?")
        if p.get("id") in ids:
            problems.append(f"panel {title!r}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not (0 <= g.get("x", -1) and g.get("x", 0) + g.get("w", 0) <= 24 and g.get("h", 0) > 0):
            problems.append(f"panel {title!r}: gridPos {g} is off the 24-column grid")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    problems.append(f"panel {title!r} overlaps {cells[(x, y)]!r}")
                    break
                cells[(x, y)] = title
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if p.get("datasource") != DS_REF:
            problems.append(f"panel {title!r}: datasource must be {DS_REF}")
        refs = [t.get("refId") for t in p.get("targets", [])]
        if not refs:
            problems.append(f"panel {title!r}: has no query")
        if len(set(refs)) != len(refs):
            problems.append(f"panel {title!r}: duplicate refIds {refs}")
        for t in p.get("targets", []):
            if t.get("datasource") != DS_REF or not t.get("expr", "").strip():
                problems.append(f"panel {title!r} query {t.get('refId')}: needs an expr on {DS_REF}")
    fail_if(problems)


def check_dashboard_key_metrics():
    """Every PromQL expression of the runbook's Key Metrics section, and of its other
    ```promql blocks (the conflict-rate query), is queried by a panel, as written."""
    text = runbook_text()
    wanted = key_metrics_expressions(text)
    for block in fenced_blocks(text, "promql"):
        wanted.extend(e for e in promql_expressions(block) if e not in wanted)
    targets = [squash(e) for p in panels(dashboard()) for e in panel_exprs(p)]
    missing = [e for e in wanted if not any(squash(e) in t for t in targets)]
    fail_if([f"no panel queries: {e}" for e in missing])


def check_dashboard_slas():
    """Every SLA of the runbook has panels, and each draws the runbook's target and critical
    thresholds."""
    dash_panels = panels(dashboard())
    problems = []
    for metric, ((_, target), (_, critical)) in sla_table(runbook_text()).items():
        rec = SLA_RECORDINGS.get(metric)
        showing = [p for p in dash_panels if rec and any(rec in metric_names_in(e) for e in panel_exprs(p))]
        if not showing:
            problems.append(f"SLA {metric!r}: no panel shows {rec}")
        for p in showing:
            values = threshold_values(p)
            for want in (target, critical):
                if not any(close(v, want) for v in values):
                    problems.append(f"panel {p.get('title')!r}: no threshold at {want:g} for SLA {metric!r}")
    fail_if(problems)


def check_compose_wiring():
    """Prometheus scrapes every service on :8000 and loads the rules; Grafana finds
    Prometheus and the dashboards where the compose stack puts them."""
    problems = []
    cfg = load_yaml(PROM_CONFIG)
    if "rules.yml" not in [Path(f).name for f in cfg.get("rule_files", [])]:
        problems.append("prometheus.yml does not load rules.yml")
    scraped = set()
    for job in cfg.get("scrape_configs", []):
        for sd in job.get("dns_sd_configs", []):
            scraped.update(f"{n}:{sd.get('port')}" for n in sd.get("names", []))
        for sc in job.get("static_configs", []):
            scraped.update(sc.get("targets", []))
    for service in SCRAPED_SERVICES:
        if f"{service}:8000" not in scraped:
            problems.append(f"prometheus.yml does not scrape {service}:8000")
    sources = load_yaml(DATASOURCE).get("datasources", [])
    if not any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in sources):
        problems.append("no Prometheus datasource at http://prometheus:9090")
    providers = load_yaml(PROVIDER).get("providers", [])
    if not any(p.get("options", {}).get("path") == "/var/lib/grafana/dashboards" for p in providers):
        problems.append("no dashboard provider loading /var/lib/grafana/dashboards")
    fail_if(problems)


CHECKS = {
    "rule metric names are the runbook's": check_rule_metric_names,
    "alerts match the runbook's thresholds and severities": check_alerts_match_runbook,
    "alerts carry summary, description and runbook link": check_alert_annotations,
    "every alert has firing and silent tests": check_rule_test_coverage,
    "dashboard JSON is the generator's output": check_dashboard_generated,
    "dashboard structure, uid and datasource variable": check_dashboard_structure,
    "dashboard queries every Key Metrics PromQL of the runbook": check_dashboard_key_metrics,
    "dashboard SLA panels carry the runbook thresholds": check_dashboard_slas,
    "compose wiring of Prometheus and Grafana": check_compose_wiring,
}


def main(argv):
    if argv[1:] == ["--list"]:
        print("\n".join(CHECKS))
        return 0
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        CHECKS[argv[1]]()
    except CheckFailed as e:
        print(e, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
        # A missing or malformed file is a failed check, not a crash of the whole run.
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
