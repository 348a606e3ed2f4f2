//! Tokens files, bearer headers and the access each RPC needs.

use super::*;

const TOKEN_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // "test"

fn file(entries: &str) -> Result<usize, String> {
    tokens::parse(entries).map(|tokens| tokens.len())
}

#[test]
fn a_tokens_file_names_its_faults() {
    let ok = format!(
        "[[token]]\nsha256 = \"{TOKEN_SHA256}\"\nsubject = \"ci\"\nnamespaces = [\"a\", \"b\"]\nroles = [\"reader\", \"writer\"]\n"
    );
    assert_eq!(file(&ok), Ok(1));
    let short = ok.replace(TOKEN_SHA256, "abc");
    assert!(file(&short).unwrap_err().contains("64 hexadecimal digits"));
    let signed = ok.replace(&TOKEN_SHA256[..2], "+f");
    assert!(file(&signed).unwrap_err().contains("64 hexadecimal digits"));
    let role = ok.replace("\"writer\"", "\"root\"");
    assert!(file(&role).unwrap_err().contains("unknown role 'root'"));
    let none = ok.replace("[\"a\", \"b\"]", "[]");
    assert!(file(&none).unwrap_err().contains("at least one namespace"));
    let twice = format!("{ok}{ok}");
    assert!(file(&twice).unwrap_err().contains("listed twice"));
    assert!(file("[[token]]\nsha256 = \"x\"\n").is_err());
    assert_eq!(file(""), Ok(0));
}

#[test]
fn the_highest_role_and_the_granted_namespaces_apply() {
    let text = format!(
        "[[token]]\nsha256 = \"{TOKEN_SHA256}\"\nsubject = \"ci\"\nnamespaces = [\"a\"]\nroles = [\"writer\", \"reader\"]\n"
    );
    let tokens = tokens::parse(&text).unwrap();
    let identity = tokens.values().next().unwrap();
    assert!(identity.has(Role::Reader) && identity.has(Role::Writer) && !identity.has(Role::Admin));
    assert!(identity.may_use("a") && !identity.may_use("b"));
    let all = tokens::parse(&text.replace("[\"a\"]", "[\"a\", \"*\"]")).unwrap();
    assert!(all.values().next().unwrap().may_use("anything"));
    let roleless = tokens::parse(&text.replace("[\"writer\", \"reader\"]", "[]")).unwrap();
    assert!(!roleless.values().next().unwrap().has(Role::Reader));
}

#[test]
fn only_bearer_headers_carry_a_token() {
    assert_eq!(bearer(Some(b"Bearer abc")), Some(&b"abc"[..]));
    assert_eq!(bearer(Some(b"bearer  abc ")), Some(&b"abc"[..]));
    assert_eq!(bearer(Some(b"Basic abc")), None);
    assert_eq!(bearer(Some(b"Bearer ")), None);
    assert_eq!(bearer(Some(b"Bear")), None);
    assert_eq!(bearer(None), None);
}

#[test]
fn each_rpc_needs_its_role() {
    use Access::{Needs, Open};
    let cases = [
        ("/grpc.health.v1.Health/Check", Open),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            Needs(Role::Admin),
        ),
        ("/purereducer.v1.CanonicalStoreService/GetState", Needs(Role::Reader)),
        ("/purereducer.v1.CanonicalStoreService/TryCommit", Needs(Role::Admin)),
        (
            "/purereducer.v1.CanonicalStoreService/DeleteWorkflow",
            Needs(Role::Admin),
        ),
        ("/purereducer.v1.ProjectionService/GetProjection", Needs(Role::Reader)),
        ("/purereducer.v1.ProjectionService/ListWatermarks", Needs(Role::Reader)),
        ("/purereducer.v1.ProjectionService/ListDeadLetters", Needs(Role::Admin)),
        ("/purereducer.v1.ProjectionService/ReplayDeadLetter", Needs(Role::Admin)),
        ("/purereducer.v1.ReducerService/RetryAction", Needs(Role::Admin)),
        ("/purereducer.v1.CanonicalStoreService/GetHistory", Needs(Role::Reader)),
        (
            "/purereducer.v1.CanonicalStoreService/ListWorkflows",
            Needs(Role::Reader),
        ),
        ("/purereducer.v1.ActionDedupService/ShouldProcess", Needs(Role::Reader)),
        ("/purereducer.v1.ActionDedupService/RecordProcessed", Needs(Role::Admin)),
        ("/purereducer.v1.ActionDedupService/CleanupExpired", Needs(Role::Admin)),
        ("/purereducer.v1.ReducerService/HandleAction", Needs(Role::Writer)),
        ("/purereducer.v1.EventBusService/PublishAction", Needs(Role::Writer)),
        ("/purereducer.v1.EventBusService/WaitForCompletion", Needs(Role::Reader)),
        ("/purereducer.v1.EventBusService/Subscribe", Needs(Role::Reader)),
        ("/purereducer.v1.Nope/Nothing", Needs(Role::Reader)),
    ];
    for (path, access) in cases {
        assert_eq!(access_for(path), access, "{path}");
    }
}
