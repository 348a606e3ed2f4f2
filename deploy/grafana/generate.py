#!/usr/bin/env python3
"""Generate deploy/grafana/dashboards/pure-reducer.json (the "Pure Reducer" dashboard).

    python3 deploy/grafana/generate.py           # rewrite the dashboard JSON
    python3 deploy/grafana/generate.py --check   # exit 1 if the committed JSON is stale

The JSON is generated rather than hand-edited because a Grafana dashboard is ~1,500 lines of
positions and ids in which a typo goes unnoticed; here each panel is one line of intent.
Standard library only, output deterministic, so deploy/tests/check-observability.sh can
compare the committed file with a fresh run.

Layout: the SLA rows first (what an operator opens the dashboard for), read from the recording
rules in deploy/prometheus/rules.yml so the panels show exactly what the alerts evaluate; then
one row per section of the runbook's "Key Metrics", whose PromQL is used verbatim, because the
runbook promises operators that those queries work as written.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "pure-reducer.json"

UID = "pure-reducer-6c"
TITLE = "Pure Reducer"
DS = {"type": "prometheus", "uid": "${datasource}"}

GREEN, YELLOW, RED = "green", "yellow", "red"


def upper_bad(target, critical):
    """Thresholds for metrics where higher is worse: target .. critical is yellow."""
    return [
        {"color": GREEN, "value": None},
        {"color": YELLOW, "value": target},
        {"color": RED, "value": critical},
    ]


def lower_bad(critical, target):
    """Thresholds for metrics where lower is worse (success rate)."""
    return [
        {"color": RED, "value": None},
        {"color": YELLOW, "value": critical},
        {"color": GREEN, "value": target},
    ]


# The SLA table of the runbook: (title, unit, thresholds, description).
# check-observability.sh verifies these numbers against the runbook's table.
COMMIT_LATENCY_T = upper_bad(10, 50)
PROJECTION_LAG_T = upper_bad(100, 500)
CONFLICT_RATE_T = upper_bad(0.05, 0.10)
SUCCESS_RATE_T = lower_bad(0.90, 0.95)
EVENT_TIMEOUT_T = upper_bad(0.01, 0.05)


class Layout:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        self._newline()
        self.panels.append({
            "type": "row",
            "id": self._id(),
            "title": title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        })
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def targets(*exprs):
    """(expr, legend) pairs -> Grafana targets with refIds A, B, ..."""
    out = []
    for i, (expr, legend) in enumerate(exprs):
        out.append({
            "datasource": DS,
            "refId": chr(ord("A") + i),
            "expr": expr,
            "legendFormat": legend,
            "range": True,
            "instant": False,
        })
    return out


def timeseries(title, exprs, unit, description="", thresholds=None, min_=None, max_=None):
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            # Dashed lines at the SLA target and critical values; plain panels show none.
            "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
        },
        "thresholds": {
            "mode": "absolute",
            "steps": thresholds or [{"color": GREEN, "value": None}],
        },
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets(*exprs),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, expr, unit, thresholds, description="", decimals=None, min_=None, max_=None):
    defaults = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": thresholds},
        # The SLA ratios are NaN when there was no traffic in the window (0 / 0); say so
        # instead of showing "NaN" in red.
        "mappings": [
            {"type": "special", "options": {"match": "nan", "result": {"text": "no traffic", "color": "text"}}},
            {"type": "special", "options": {"match": "null", "result": {"text": "no data", "color": "text"}}},
        ],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets((expr, "")),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
    }


# Legends for the runbook's per-series queries. Labels a series lacks render as empty.
BY_WORKFLOW = "{{service}} {{namespace}}/{{workflow_type}}"
BY_EVENT = "{{service}} {{event_type}}"
BY_INSTANCE = "{{service}} {{instance}}"


def build():
    L = Layout()

    # --- SLA overview: the current value of each SLA, coloured by the runbook's table. -----
    L.row("SLA overview")
    L.add(stat("Commit latency p95", "pure_reducer:commit_latency_ms:p95_5m", "ms", COMMIT_LATENCY_T,
               "SLA: < 10 ms, critical > 50 ms (alert CommitLatencyHigh).", decimals=1), 4, 4)
    L.add(stat("Projection lag", "pure_reducer:projection_lag_ms:max", "ms", PROJECTION_LAG_T,
               "Slowest materializer. SLA: < 100 ms, critical > 500 ms (alert ProjectionLagHigh).",
               decimals=0), 4, 4)
    L.add(stat("Conflict rate", "pure_reducer:conflict_rate:ratio_5m", "percentunit", CONFLICT_RATE_T,
               "SLA: < 5 %, alert > 10 % (HighConflictRate).", decimals=1, min_=0, max_=1), 4, 4)
    L.add(stat("Success rate", "pure_reducer:success_rate:ratio_5m", "percentunit", SUCCESS_RATE_T,
               "SLA: > 95 %, critical < 90 % (alert SuccessRateLow).", decimals=1, min_=0, max_=1), 4, 4)
    L.add(stat("Event timeout rate", "pure_reducer:event_timeout_rate:ratio_5m", "percentunit",
               EVENT_TIMEOUT_T, "SLA: < 1 %, alert > 5 % (EventTimeoutRateHigh).",
               decimals=1, min_=0, max_=1), 4, 4)
    # Any give-up is critical (alert ReducerGaveUp, which reads the same recording), hence red
    # from 1; `or vector(0)` because the series only exists once something has given up.
    L.add(stat("Reducer gave up (5m)", "sum(pure_reducer:reducer_gave_up:increase_5m) or vector(0)", "short",
               [{"color": GREEN, "value": None}, {"color": RED, "value": 1}],
               "Actions that ended GAVE_UP in the last 5 minutes; any is critical.", decimals=0), 4, 4)

    # --- SLA trends: the same recording rules over time, with the thresholds drawn. --------
    L.row("SLA trends")
    L.add(timeseries("Commit latency p95 / p99 (SLA: p95 < 10 ms, critical > 50 ms)", [
        ("pure_reducer:commit_latency_ms:p95_5m", "p95"),
        ("pure_reducer:commit_latency_ms:p99_5m", "p99"),
    ], "ms", "Canonical store TryCommit latency over all replicas and workflow types, 5m window.",
        COMMIT_LATENCY_T, min_=0), 12, 8)
    L.add(timeseries("Projection lag (SLA: < 100 ms, critical > 500 ms)", [
        ("pure_reducer:projection_lag_ms:max", "max lag"),
    ], "ms", "projection_materializer_wm_lag_ms of the slowest materializer.",
        PROJECTION_LAG_T, min_=0), 12, 8)
    L.add(timeseries("Conflict rate (SLA: < 5 %, alert > 10 %)", [
        ("pure_reducer:conflict_rate:ratio_5m", "conflict rate"),
    ], "percentunit", "conflicts / (commits + conflicts), 5m window.", CONFLICT_RATE_T, min_=0), 8, 8)
    L.add(timeseries("Success rate (SLA: > 95 %, critical < 90 %)", [
        ("pure_reducer:success_rate:ratio_5m", "success rate"),
    ], "percentunit", "successful / (successful + failed) reducer actions, 5m window.",
        SUCCESS_RATE_T, min_=0, max_=1), 8, 8)
    L.add(timeseries("Event timeout rate (SLA: < 1 %, alert > 5 %)", [
        ("pure_reducer:event_timeout_rate:ratio_5m", "timeout rate"),
    ], "percentunit", "timeouts / (consumed + timeouts), 5m window.", EVENT_TIMEOUT_T, min_=0), 8, 8)

    # --- Key metrics, one row per runbook section, PromQL verbatim from the runbook. -------
    L.row("Canonical store")
    L.add(timeseries("Commits per second", [
        ("rate(canonical_store_state_commits_total[5m])", BY_WORKFLOW),
    ], "ops"), 8, 8)
    L.add(timeseries("Conflicts per second", [
        ("rate(canonical_store_state_conflicts_total[5m])", BY_WORKFLOW),
    ], "ops"), 8, 8)
    L.add(timeseries("Conflict rate per workflow", [
        ("rate(canonical_store_state_conflicts_total[5m]) / "
         "(rate(canonical_store_state_commits_total[5m]) + rate(canonical_store_state_conflicts_total[5m]))",
         BY_WORKFLOW),
    ], "percentunit", "The runbook's conflict-rate query; use it to find hot workflow types.",
        CONFLICT_RATE_T, min_=0), 8, 8)
    L.add(timeseries("Commit latency percentiles", [
        ("histogram_quantile(0.95, rate(canonical_store_commit_latency_ms_bucket[5m]))", "p95 " + BY_WORKFLOW),
        ("histogram_quantile(0.99, rate(canonical_store_commit_latency_ms_bucket[5m]))", "p99 " + BY_WORKFLOW),
    ], "ms", "Per series (replica and workflow type); the SLA panel above merges them.",
        COMMIT_LATENCY_T, min_=0), 12, 8)
    L.add(timeseries("Get state operations", [
        ("rate(canonical_store_get_state_total[5m])", "get_state " + BY_WORKFLOW),
        ("rate(canonical_store_get_state_errors[5m])", "errors " + BY_WORKFLOW),
    ], "ops", "Rising errors usually mean connection pool exhaustion (runbook troubleshooting)."),
        12, 8)

    L.row("Reducer service")
    L.add(timeseries("Actions per second", [
        ("rate(reducer_successful_actions_total[5m])", "successful " + BY_WORKFLOW),
        ("rate(reducer_failed_actions_total[5m])", "failed " + BY_WORKFLOW),
    ], "ops", "Failed = max retries exceeded."), 8, 8)
    L.add(timeseries("Conflict attempts (retries) per second", [
        ("rate(reducer_conflict_attempts_total[5m])", BY_WORKFLOW),
    ], "ops"), 8, 8)
    L.add(timeseries("Gave up count (critical)", [
        ("reducer_gave_up_total", BY_WORKFLOW),
    ], "short", "Cumulative since each process started; any increase fires ReducerGaveUp."), 8, 8)
    L.add(timeseries("Backoff delay distribution", [
        ("histogram_quantile(0.50, rate(reducer_backoff_ms_bucket[5m]))", "p50 " + BY_WORKFLOW),
        ("histogram_quantile(0.95, rate(reducer_backoff_ms_bucket[5m]))", "p95 " + BY_WORKFLOW),
    ], "ms", "Full-jitter backoff between conflict retries (backoff_base_ms .. backoff_cap_ms).",
        min_=0), 24, 8)

    L.row("Projection materializer")
    L.add(timeseries("Projections per second", [
        ("rate(projection_materializer_projections_materialized_total[5m])", "materialized " + BY_WORKFLOW),
        ("rate(projection_materializer_projections_failed_total[5m])", "failed " + BY_WORKFLOW),
    ], "ops"), 8, 8)
    L.add(timeseries("Watermark lag (should be < 100 ms)", [
        ("projection_materializer_wm_lag_ms", BY_INSTANCE),
    ], "ms", "Per materializer; alert ProjectionLagHigh above 500 ms.", PROJECTION_LAG_T, min_=0), 8, 8)
    L.add(timeseries("Max lag observed", [
        ("projection_materializer_max_lag_ms", BY_INSTANCE),
    ], "ms", thresholds=PROJECTION_LAG_T, min_=0), 8, 8)
    L.add(stat("Watermark regressions (should be 0)", "projection_materializer_wm_regressions_total", "short",
               [{"color": GREEN, "value": None}, {"color": RED, "value": 1}],
               "Any value above 0: see the runbook's 'Projection Watermark Regressions'.", decimals=0), 8, 8)
    L.add(timeseries("Duplicate events skipped per second", [
        ("rate(projection_materializer_duplicate_events_skipped[5m])", BY_INSTANCE),
    ], "ops"), 8, 8)
    L.add(timeseries("Processing rate", [
        ("projection_materializer_events_processed_per_second", BY_INSTANCE),
    ], "ops"), 8, 8)

    L.row("Action dedup")
    L.add(timeseries("Dedup checks per second", [
        ("rate(action_dedup_checks_total[5m])", BY_WORKFLOW),
    ], "ops"), 6, 8)
    L.add(timeseries("Dedup hit rate", [
        ("rate(action_dedup_hits_total[5m]) / rate(action_dedup_checks_total[5m])", BY_WORKFLOW),
    ], "percentunit", "Share of actions already processed (retried or duplicated by callers).",
        min_=0, max_=1), 6, 8)
    L.add(timeseries("Records created per second", [
        ("rate(action_dedup_records_total[5m])", BY_WORKFLOW),
    ], "ops"), 6, 8)
    L.add(timeseries("Cleanup operations (deleted per second)", [
        ("rate(action_dedup_cleanup_deleted_total[5m])", BY_INSTANCE),
    ], "ops"), 6, 8)

    L.row("Event bus")
    L.add(timeseries("Events per second by type", [
        ("rate(event_bus_published_total[5m])", "published " + BY_EVENT),
        ("rate(event_bus_consumed_total[5m])", "consumed " + BY_EVENT),
    ], "ops"), 8, 8)
    L.add(timeseries("Timeout rate (should be < 1 %)", [
        ("rate(event_bus_timeout_total[5m]) / "
         "(rate(event_bus_consumed_total[5m]) + rate(event_bus_timeout_total[5m]))", BY_EVENT),
    ], "percentunit", "Per event type; alert EventTimeoutRateHigh above 5 % overall.",
        EVENT_TIMEOUT_T, min_=0), 8, 8)
    L.add(timeseries("Wait time distribution (p95)", [
        ("histogram_quantile(0.95, rate(event_bus_wait_time_ms_bucket[5m]))", BY_EVENT),
    ], "ms", "WaitForCompletion wait time.", min_=0), 8, 8)

    return {
        "id": None,
        "uid": UID,
        "title": TITLE,
        "description": "Pure Reducer SLAs and the key metrics of the operations runbook.",
        "tags": ["pure-reducer"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [{
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }],
        },
        "templating": {
            "list": [{
                # Every panel queries "${datasource}", so the dashboard works against any
                # Prometheus, not only the provisioned one.
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "options": [],
                "refresh": 1,
                "regex": "",
                "skipUrlSync": False,
            }],
        },
        "panels": L.panels,
    }


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if argv[1:] == ["--check"]:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is not the output of {Path(__file__).name}; "
                  "run python3 deploy/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
