//! reducerctl against a real reducerd process: every command, its human and JSON output, and
//! its exit codes. Needs `cargo build -p reducerd` first (see `support`).

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, closed_addr, ctl_command};

const ACTION_ID: &str = "6f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9d";

fn merge_action<'a>(key: &'a str, payload: &'a str) -> Vec<&'a str> {
    vec![
        "handle-action",
        key,
        "--type",
        "merge",
        "--action",
        "set",
        "--payload",
        payload,
    ]
}

#[test]
fn handle_action_twice_with_one_action_id_commits_once() {
    let server = Server::start();
    let mut args = merge_action("order-1", r#"{"customer":"ana","total":42}"#);
    args.extend(["--action-id", ACTION_ID]);

    let first = server.ctl(&args).success();
    assert_eq!(first.field("status"), "COMMITTED");
    assert_eq!(first.field("version"), "1");
    assert_eq!(first.field("action_id"), ACTION_ID);
    assert_eq!(first.field("state"), r#"{"customer":"ana","total":42}"#);

    args.push("--json");
    let second = server.ctl(&args).success().json();
    assert_eq!(second["status"], "DUPLICATE");
    assert_eq!(second["version"], 1);
    assert_eq!(second["attempts"], 0);
    assert_eq!(second["result_hash"], first.field("result_hash").as_str());

    let state = server.ctl(&["get-state", "order-1", "--json"]).success().json();
    assert_eq!(state["version"], 1, "the duplicate must not have committed again");
}

#[test]
fn get_state_prints_text_and_json() {
    let server = Server::start();
    server
        .ctl(&merge_action("order-2", r#"{"customer":"ana","total":42,"ratio":0.5}"#))
        .success();

    let human = server.ctl(&["get-state", "order-2"]).success();
    assert_eq!(human.field("workflow_key"), "order-2");
    assert_eq!(human.field("version"), "1");
    assert_eq!(human.field("workflow_type"), "merge");
    assert_eq!(human.field("namespace"), "default");
    assert_eq!(human.field("state"), r#"{"customer":"ana","ratio":0.5,"total":42}"#);

    let machine = server.ctl(&["--json", "get-state", "order-2"]).success().json();
    assert_eq!(machine["version"], 1);
    assert_eq!(machine["state"], json!({"customer": "ana", "total": 42, "ratio": 0.5}));
    assert!(
        machine["state"]["total"].is_i64(),
        "whole numbers print as integers: {machine}"
    );
    assert!(
        machine["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{machine}"
    );
}

#[test]
fn try_commit_reports_a_conflict_without_changing_the_state() {
    let server = Server::start();
    let create = [
        "try-commit",
        "acct-1",
        "--expected-version",
        "0",
        "--state",
        r#"{"n":1}"#,
        "--type",
        "merge",
    ];
    let committed = server.ctl(&create).success();
    assert_eq!(committed.field("outcome"), "committed");
    assert_eq!(committed.field("version"), "1");

    let stale = [
        "try-commit",
        "acct-1",
        "--expected-version",
        "0",
        "--state",
        r#"{"n":2}"#,
        "--json",
    ];
    let conflict = server.ctl(&stale).success().json();
    assert_eq!(conflict["outcome"], "conflict");
    assert_eq!(conflict["current_version"], 1);
    assert_eq!(conflict["expected_version"], 0);

    let state = server.ctl(&["get-state", "acct-1", "--json"]).success().json();
    assert_eq!(
        (state["version"].clone(), state["state"].clone()),
        (json!(1), json!({"n": 1}))
    );
}

#[test]
fn get_projection_waits_for_the_requested_version() {
    let server = Server::start();
    server.ctl(&merge_action("proj-1", r#"{"step":1}"#)).success();
    server.ctl(&merge_action("proj-1", r#"{"step":2}"#)).success();

    let args = [
        "get-projection",
        "proj-1",
        "--min-version",
        "2",
        "--max-wait-ms",
        "10000",
        "--json",
    ];
    let projection = server.ctl(&args).success().json();
    assert_eq!(projection["version"], 2);
    assert_eq!(
        projection["from_canonical"], false,
        "the materializer reached v2: {projection}"
    );
    assert_eq!(projection["last_action"], "set");
    assert_eq!(projection["extras"]["step"], 2);

    let human = server.ctl(&["get-projection", "proj-1"]).success();
    assert_eq!(human.field("version"), "2");
    assert_eq!(human.field("from_canonical"), "false");

    // Version 3 never comes: after the wait the answer is built from the canonical state.
    let ahead = [
        "get-projection",
        "proj-1",
        "--min-version",
        "3",
        "--max-wait-ms",
        "200",
        "--json",
    ];
    let fallback = server.ctl(&ahead).success().json();
    assert_eq!(fallback["from_canonical"], true, "{fallback}");
    assert_eq!(fallback["version"], 2);
}

#[test]
fn watermarks_list_the_applied_partitions() {
    let server = Server::start();
    let empty = server.ctl(&["watermarks"]).success();
    assert_eq!(empty.stdout.trim(), "no watermarks yet: nothing has been materialized");
    assert_eq!(
        server.ctl(&["watermarks", "--json"]).success().json(),
        json!({"watermarks": []})
    );

    server.ctl(&merge_action("wm-1", r#"{"a":1}"#)).success();
    // Once the projection is at v1 the watermark has moved past that event.
    server
        .ctl(&["get-projection", "wm-1", "--min-version", "1", "--max-wait-ms", "10000"])
        .success();

    let listed = server.ctl(&["watermarks", "--json"]).success().json();
    let marks = listed["watermarks"].as_array().expect("a list");
    assert_eq!(marks.len(), 1, "{listed}");
    let topic = marks[0]["topic"].as_str().expect("topic");
    assert!(!topic.is_empty());
    assert!(
        marks[0]["offset"].as_i64().is_some_and(|offset| offset >= 1),
        "{listed}"
    );

    let table = server.ctl(&["watermarks"]).success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:#?}");
    assert!(
        lines[0].starts_with("TOPIC") && lines[0].contains("OFFSET"),
        "{table:#?}"
    );
    assert!(lines[1].starts_with(topic), "{table:#?}");
}

#[test]
fn dedup_should_process_and_cleanup() {
    // Records live three seconds (long enough for the checks before they expire), so cleanup
    // soon has something to delete; no periodic cleanup races it.
    let server = Server::start_with_config("[dedup]\nttl_seconds = 3\ncleanup_interval_seconds = 0\n");
    let mut args = merge_action("dedup-1", "{}");
    args.extend(["--action-id", ACTION_ID]);
    server.ctl(&args).success();

    let seen = server.ctl(&["dedup", "should-process", "dedup-1", ACTION_ID]).success();
    assert_eq!(seen.field("should_process"), "false");
    assert_eq!(seen.field("previous_status"), "COMMITTED");
    assert_eq!(seen.field("previous_version"), "1");
    let fresh = "0d8e5c1a-3b2f-4c6d-9e7f-1a2b3c4d5e6f";
    let unseen = server
        .ctl(&["dedup", "should-process", "dedup-1", fresh, "--json"])
        .success()
        .json();
    assert_eq!(unseen["should_process"], true);

    // Expiry follows the database clock, so ask until the record has expired and gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut deleted = 0;
    while deleted == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let cleanup = server.ctl(&["dedup", "cleanup", "--json"]).success().json();
        deleted = cleanup["deleted"].as_u64().expect("a count");
    }
    assert_eq!(deleted, 1, "exactly the one expired record is deleted");
    let after = server
        .ctl(&["dedup", "should-process", "dedup-1", ACTION_ID, "--json"])
        .success()
        .json();
    assert_eq!(after["should_process"], true, "the expired record is gone: {after}");
    let nothing_left = server.ctl(&["dedup", "cleanup"]).success();
    assert_eq!(nothing_left.field("deleted"), "0");
}

#[test]
fn publish_then_wait_returns_the_outcome() {
    let server = Server::start();
    let args = [
        "publish",
        "bus-1",
        "--type",
        "merge",
        "--action",
        "set",
        "--payload",
        r#"{"x":1}"#,
    ];
    let published = server.ctl(&args).success();
    let correlation_id = published.field("correlation_id");

    let outcome = server
        .ctl(&["wait", &correlation_id, "--timeout-ms", "10000", "--json"])
        .success()
        .json();
    assert_eq!(outcome["status"], "COMMITTED");
    assert_eq!(outcome["workflow_key"], "bus-1");
    assert_eq!(outcome["version"], 1);
    assert_eq!(outcome["action_id"], published.field("action_id").as_str());
    let state = server.ctl(&["get-state", "bus-1", "--json"]).success().json();
    assert_eq!(state["state"], json!({"x": 1}));

    let never = server
        .ctl(&["wait", "no-such-correlation", "--timeout-ms", "200"])
        .failure(1);
    assert!(never.stderr.starts_with("error: DEADLINE_EXCEEDED: "), "{never:#?}");
    assert!(never.stderr.contains("no-such-correlation"), "{never:#?}");
    assert!(
        never.stderr.contains("within 200 ms"),
        "the server waited --timeout-ms: {never:#?}"
    );
}

#[test]
fn subscribe_prints_events_as_they_come_and_stops_at_the_limit() {
    let server = Server::start();
    let follow = ["subscribe", "--key", "sub-1", "--limit", "3", "--timeout-ms", "30000"];
    let machine = server.spawn_ctl(&[&follow[..], &["--json"]].concat());
    let human = server.spawn_ctl(&follow);

    // Keep committing (to the followed key and to another one) until both subscribers stop;
    // events before a subscription started are not replayed, so a fixed number would race.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut followers = [machine, human];
    let mut step = 0;
    while followers.iter_mut().any(|c| c.try_wait().expect("poll").is_none()) && Instant::now() < deadline {
        step += 1;
        let payload = format!(r#"{{"step":{step}}}"#);
        server.ctl(&merge_action("sub-1", &payload)).success();
        server.ctl(&merge_action("sub-other", &payload)).success();
        std::thread::sleep(Duration::from_millis(50));
    }
    let [machine, human] = followers.map(|child| support::Run::from(child.wait_with_output().expect("wait")).success());

    let events: Vec<Value> = machine
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 3, "{machine:#?}");
    let first = events[0]["version"].as_u64().expect("version");
    for (offset, event) in (0_u64..).zip(&events) {
        assert_eq!(event["event"], "state_committed");
        assert_eq!(event["workflow_key"], "sub-1", "the filter keeps other keys out");
        assert_eq!(event["version"], first + offset, "in version order, none skipped");
    }
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{human:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("state_committed workflow_key=sub-1 version=")),
        "{human:#?}"
    );
}

#[test]
fn health_reports_serving() {
    let server = Server::start();
    let overall = ctl_command(None, &["health"])
        .env("REDUCERCTL_ADDR", &server.addr)
        .output();
    let overall = support::Run::from(overall.expect("run reducerctl")).success();
    assert_eq!(overall.field("status"), "SERVING");

    let one = server
        .ctl(&["health", "--service", "purereducer.v1.ReducerService", "--json"])
        .success();
    assert_eq!(
        one.json(),
        json!({"service": "purereducer.v1.ReducerService", "status": "SERVING"})
    );

    let unknown = server
        .ctl(&["health", "--service", "purereducer.v1.NoSuchService"])
        .failure(1);
    assert!(unknown.stderr.contains("NOT_FOUND"), "{unknown:#?}");
}

#[test]
fn an_unreachable_server_is_unavailable_and_handle_action_retries_with_one_action_id() {
    let addr = closed_addr();
    let health = support::Run::from(ctl_command(Some(&addr), &["health"]).output().expect("run")).failure(1);
    assert!(health.stderr.starts_with("error: UNAVAILABLE: "), "{health:#?}");

    let mut args = merge_action("order-9", "{}");
    args.extend(["--action-id", ACTION_ID]);
    let run = support::Run::from(ctl_command(Some(&addr), &args).output().expect("run")).failure(1);
    let retries: Vec<&str> = run.stderr.lines().filter(|l| l.contains("retrying")).collect();
    assert_eq!(retries.len(), 2, "three calls in all: {run:#?}");
    assert!(retries.iter().all(|l| l.contains(ACTION_ID)), "{run:#?}");
    assert!(retries[1].contains("call 3 of 3"), "{run:#?}");
    assert!(run.stderr.contains("error: UNAVAILABLE: "), "{run:#?}");
}

#[test]
fn bad_input_names_the_field_and_exits_2() {
    let server = Server::start();
    let bad_key = server.ctl(&["get-state", "bad key"]).failure(2);
    assert!(bad_key.stderr.starts_with("error: INVALID_ARGUMENT: "), "{bad_key:#?}");
    assert!(bad_key.stderr.contains("\n  field workflow_key: "), "{bad_key:#?}");

    let mut args = merge_action("bad key", "{}");
    args.extend(["--action-id", "not-a-uuid"]);
    let bad_action = server.ctl(&args).failure(2);
    assert!(
        bad_action.stderr.contains("field action.workflow_key: "),
        "{bad_action:#?}"
    );
    assert!(
        bad_action.stderr.contains("field action.action_id: "),
        "{bad_action:#?}"
    );

    let not_object = server.ctl(&merge_action("order-3", "[1,2]")).failure(2);
    assert_eq!(
        not_object.stderr.trim(),
        "error: --payload must be a JSON object, got an array"
    );
    let missing_flag = server.ctl(&["handle-action", "order-3", "--action", "set"]).failure(2);
    assert!(missing_flag.stderr.contains("--type"), "{missing_flag:#?}");

    let missing = server.ctl(&["get-state", "order-3"]).failure(1);
    assert!(
        missing.stderr.starts_with("error: NOT_FOUND: "),
        "nothing was stored: {missing:#?}"
    );
}

#[test]
fn history_shows_each_version_with_what_it_changed_and_list_finds_workflows() {
    let server = Server::start();
    server
        .ctl(&merge_action("order-h", r#"{"status":"open","total":1}"#))
        .success();
    server.ctl(&merge_action("order-h", r#"{"status":"paid"}"#)).success();
    server.ctl(&merge_action("other-h", r#"{"status":"open"}"#)).success();

    let human = server.ctl(&["history", "order-h"]).success();
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert!(
        lines[0].starts_with("v1 status=COMMITTED action_type=set"),
        "{human:#?}"
    );
    assert_eq!(
        lines[1..3],
        ["    + $.status = \"open\"", "    + $.total = 1"],
        "{human:#?}"
    );
    assert!(lines[3].starts_with("v2 status=COMMITTED"), "{human:#?}");
    assert_eq!(lines[4], "    ~ $.status: \"open\" -> \"paid\"", "{human:#?}");
    assert_eq!(lines.len(), 5, "{human:#?}");

    let newest = server
        .ctl(&["--json", "history", "order-h", "--reverse", "--limit", "1"])
        .success()
        .json();
    assert_eq!(newest["version"], "v2");
    assert_eq!(newest["state"], json!({"status": "paid", "total": 1}));
    assert_eq!(
        newest["changes"],
        json!([{"path": "$.status", "before": "open", "after": "paid"}]),
        "the diff is against the version before, even when only the newest is shown"
    );

    let listed = server.ctl(&["--json", "list", "--prefix", "order-"]).success().json();
    let keys: Vec<&str> = listed["workflows"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|w| w["workflow_key"].as_str())
        .collect();
    assert_eq!(keys, ["order-h"]);
    let open = server.ctl(&["list", "--status", "open"]).success();
    assert!(
        open.stdout.contains("other-h") && !open.stdout.contains("order-h"),
        "{open:#?}"
    );
}

#[test]
fn dead_letters_and_retry_answer_with_what_to_do() {
    let server = Server::start();
    let empty = server.ctl(&["dead-letters", "list"]).success();
    assert_eq!(empty.stdout.trim(), "no dead letters");
    let missing = server.ctl(&["dead-letters", "replay", "42"]).failure(1);
    assert!(
        missing.stderr.contains("NOT_FOUND") && missing.stderr.contains("list dead letters"),
        "{missing:#?}"
    );
    server.ctl(&merge_action("order-r", r#"{"a":1}"#)).success();
    let never = server
        .ctl(&["retry", "order-r", "6f1c9a52-7d4e-4a8b-9c0d-2e5f6a7b8c9e"])
        .failure(1);
    assert!(never.stderr.contains("NOT_FOUND"), "{never:#?}");
}

#[test]
fn payloads_come_from_files_and_stdin_and_errors_are_json_under_json() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("payload.json");
    // Larger than a command line may carry.
    let big = "y".repeat(200 * 1024);
    std::fs::write(&file, format!(r#"{{"note":"{big}"}}"#)).expect("payload file");
    let at_file = format!("@{}", file.display());
    let from_file = server.ctl(&merge_action("order-f", &at_file)).success();
    assert_eq!(from_file.field("status"), "COMMITTED");

    let mut child = server.spawn_ctl(&merge_action("order-f", "-"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(br#"{"from":"stdin"}"#).expect("write stdin");
    }
    let output = child.wait_with_output().expect("reducerctl");
    assert!(output.status.success(), "{output:?}");
    let state = server.ctl(&["--json", "get-state", "order-f"]).success().json();
    assert_eq!(state["version"], 2);
    assert_eq!(state["state"]["from"], "stdin");

    let missing = server
        .ctl(&merge_action("order-f", "@/nonexistent/payload.json"))
        .failure(2);
    assert!(missing.stderr.contains("cannot read the file"), "{missing:#?}");
    let error = server.ctl(&["--json", "get-state", "no-such-workflow"]).failure(1);
    let parsed: Value = serde_json::from_str(error.stderr.trim()).expect("a JSON error");
    assert_eq!(parsed["error"]["code"], "NOT_FOUND");
    assert!(
        parsed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not exist"))
    );
}

#[test]
fn a_reader_that_stops_reading_ends_reducerctl_quietly() {
    let server = Server::start();
    for step in 1..=3 {
        server
            .ctl(&merge_action("piped", &format!(r#"{{"step":{step}}}"#)))
            .success();
    }
    // The replay from version 1 writes three lines; the reading end is already closed (as
    // with `| head -0`), so each write meets a broken pipe.
    let mut child = server.spawn_ctl(&["subscribe", "--key", "piped", "--from-version", "1", "--limit", "3"]);
    drop(child.stdout.take());
    let run = support::Run::from(child.wait_with_output().expect("wait"));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stderr.is_empty(), "nothing to report: {run:#?}");
}
