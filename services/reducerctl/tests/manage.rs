//! reducerctl's management commands against a real reducerd process: `delete`, and
//! `completion`, which needs no server at all. Needs `cargo build -p reducerd` first (see
//! `support`).

// Shared with the other test binary, which uses parts this one does not.
#[allow(dead_code)]
mod support;

use support::{Server, closed_addr, ctl_command};

#[test]
fn delete_removes_a_workflow_and_its_next_action_starts_it_again() {
    let server = Server::start();
    let set = |payload: &str| {
        server
            .ctl(&[
                "handle-action",
                "order-d",
                "--type",
                "merge",
                "--action",
                "set",
                "--payload",
                payload,
            ])
            .success()
    };
    set(r#"{"a":1}"#);
    let stale = server.ctl(&["delete", "order-d", "--expected-version", "7"]).failure(1);
    assert!(
        stale.stderr.contains("FAILED_PRECONDITION") && stale.stderr.contains("at version 1"),
        "{stale:#?}"
    );
    let deleted = server
        .ctl(&["--json", "delete", "order-d", "--reason", "test over"])
        .success();
    assert_eq!(deleted.json()["version"], 2, "{deleted:#?}");
    let gone = server.ctl(&["get-state", "order-d"]).failure(1);
    assert!(
        gone.stderr.contains("NOT_FOUND") && gone.stderr.contains("deleted at version 2"),
        "{gone:#?}"
    );
    let again = server.ctl(&["delete", "order-d"]).failure(1);
    assert!(again.stderr.contains("NOT_FOUND"), "{again:#?}");

    let reborn = set(r#"{"b":2}"#);
    assert_eq!(reborn.field("version"), "3");
    let history = server.ctl(&["--json", "history", "order-d"]).success();
    assert!(
        history.stdout.contains("DeleteWorkflow") && history.stdout.contains("test over"),
        "{history:#?}"
    );
}

#[test]
fn completion_scripts_are_printed_for_each_shell_without_a_server() {
    // Nothing listens here: completion must not try to connect.
    let addr = closed_addr();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef reducerctl"),
        ("fish", "complete -c reducerctl"),
    ] {
        let output = ctl_command(Some(&addr), &["completion", shell])
            .output()
            .expect("run reducerctl");
        assert!(output.status.success(), "{shell}: {output:#?}");
        let script = String::from_utf8(output.stdout).expect("utf-8");
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for command in ["delete", "history", "dead-letters", "handle-action"] {
            assert!(script.contains(command), "{shell} script does not complete {command}");
        }
    }
    let unknown = ctl_command(Some(&addr), &["completion", "tcsh"])
        .output()
        .expect("run reducerctl");
    assert_eq!(unknown.status.code(), Some(2), "a usage error: {unknown:#?}");
}
