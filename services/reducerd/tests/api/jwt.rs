//! JWT authentication through the real server, with an issuer key made in the test: a valid
//! token works within its roles and namespaces; expired, not-yet-valid, wrongly issued,
//! wrongly signed and algorithm-swapped tokens are UNAUTHENTICATED; a rotated key set applies
//! to the next call.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use purereducer_api::v1::projection_service_client::ProjectionServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{HandleActionRequest, ListWatermarksRequest};
use serde_json::json;
use tonic::{Code, Request};

use crate::support::{Backend, TestServer, action, new_id, start};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "pure-reducer";

/// An ECDSA P-256 signing key and its public JWK.
struct IssuerKey {
    id: String,
    pair: rcgen::KeyPair,
}

impl IssuerKey {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
        }
    }

    fn jwk(&self) -> serde_json::Value {
        let point = self.pair.public_key_raw();
        assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.id,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.id.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pair.serialize_der())).expect("sign")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn claims(namespaces: &[&str], roles: &[&str]) -> serde_json::Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "service-a",
        "iat": now(), "exp": now() + 600,
        "namespaces": namespaces, "roles": roles,
    })
}

fn write_jwks(path: &Path, keys: &[&IssuerKey]) {
    let set = json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() });
    let staged = path.with_extension("new");
    std::fs::write(&staged, set.to_string()).expect("jwks");
    std::fs::rename(&staged, path).expect("replace jwks");
}

async fn jwt_server(key: &IssuerKey) -> (TestServer, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, &[key]);
    let file = jwks.clone();
    let server = start(Backend::Sqlite, move |config| {
        config.auth.mode = "jwt".into();
        config.auth.jwt.jwks_file = Some(file);
        config.auth.jwt.issuer = ISSUER.into();
        config.auth.jwt.audience = AUDIENCE.into();
    })
    .await;
    (server, dir, jwks)
}

async fn watermarks(server: &TestServer, token: &str) -> Result<(), tonic::Status> {
    let mut request = Request::new(ListWatermarksRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    ProjectionServiceClient::new(server.channel.clone())
        .list_watermarks(request)
        .await
        .map(drop)
}

async fn act(server: &TestServer, token: &str, namespace: &str) -> Result<(), tonic::Status> {
    let mut sent = action(
        &new_id(),
        &format!("jwt-{namespace}-1"),
        "merge",
        "set",
        json!({"n": 1}),
    );
    sent.namespace = namespace.into();
    let mut request = Request::new(HandleActionRequest { action: Some(sent) });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    ReducerServiceClient::new(server.channel.clone())
        .handle_action(request)
        .await
        .map(drop)
}

#[tokio::test]
async fn a_valid_jwt_works_within_its_roles_and_namespaces() {
    let key = IssuerKey::new("k1");
    let (server, _dir, _jwks) = jwt_server(&key).await;
    let writer = key.sign(&claims(&["a"], &["writer"]));
    watermarks(&server, &writer).await.expect("a writer reads");
    act(&server, &writer, "a")
        .await
        .expect("a writer writes in its namespace");
    let denied = act(&server, &writer, "b").await.expect_err("another namespace");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let reader = key.sign(&claims(&["*"], &["reader"]));
    assert_eq!(
        act(&server, &reader, "a").await.expect_err("a reader").code(),
        Code::PermissionDenied
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_early_foreign_and_forged_jwts_are_unauthenticated() {
    let key = IssuerKey::new("k1");
    let (server, _dir, _jwks) = jwt_server(&key).await;
    let mut expired = claims(&["*"], &["admin"]);
    expired["exp"] = json!(now() - 3600);
    let mut early = claims(&["*"], &["admin"]);
    early["nbf"] = json!(now() + 3600);
    let mut foreign_issuer = claims(&["*"], &["admin"]);
    foreign_issuer["iss"] = json!("https://someone.else");
    let mut foreign_audience = claims(&["*"], &["admin"]);
    foreign_audience["aud"] = json!("another-service");
    let mut no_exp = claims(&["*"], &["admin"]);
    no_exp.as_object_mut().expect("object").remove("exp");
    let stranger = IssuerKey::new("k1");
    // A token that names the key but claims a symmetric algorithm.
    let mut hmac = Header::new(Algorithm::HS256);
    hmac.kid = Some("k1".into());
    let swapped = jsonwebtoken::encode(
        &hmac,
        &claims(&["*"], &["admin"]),
        &EncodingKey::from_secret(key.jwk().to_string().as_bytes()),
    )
    .expect("sign");
    let cases = [
        ("expired", key.sign(&expired), "expired"),
        ("not yet valid", key.sign(&early), "not valid yet"),
        ("another issuer", key.sign(&foreign_issuer), "not valid"),
        ("another audience", key.sign(&foreign_audience), "not valid"),
        ("no exp", key.sign(&no_exp), "not valid"),
        ("another key", stranger.sign(&claims(&["*"], &["admin"])), "not valid"),
        ("HS256 with the key's id", swapped, "not valid"),
        ("not a JWT", "a.b.c".to_owned(), "not valid"),
    ];
    for (case, token, says) in cases {
        let status = watermarks(&server, &token).await.expect_err(case);
        assert_eq!(status.code(), Code::Unauthenticated, "{case}");
        assert!(status.message().contains(says), "{case}: {}", status.message());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_key_set_applies_to_the_next_call() {
    let old = IssuerKey::new("2026-11");
    let (server, _dir, jwks) = jwt_server(&old).await;
    let new = IssuerKey::new("2026-12");
    let old_token = old.sign(&claims(&["*"], &["reader"]));
    let new_token = new.sign(&claims(&["*"], &["reader"]));
    watermarks(&server, &old_token).await.expect("the old key verifies");
    assert_eq!(
        watermarks(&server, &new_token).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    write_jwks(&jwks, &[&old, &new]);
    watermarks(&server, &new_token)
        .await
        .expect("both keys during the overlap");
    watermarks(&server, &old_token)
        .await
        .expect("both keys during the overlap");
    write_jwks(&jwks, &[&new]);
    assert_eq!(
        watermarks(&server, &old_token).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    std::fs::write(&jwks, "{ not json").expect("broken");
    watermarks(&server, &new_token)
        .await
        .expect("a broken key set keeps the last keys");
    server.stop().await;
}
