//! A reducerd per test: a fresh database, a server on an ephemeral port, typed clients.

use std::sync::Arc;

use purereducer_api::v1::action_dedup_service_client::ActionDedupServiceClient;
use purereducer_api::v1::canonical_store_service_client::CanonicalStoreServiceClient;
use purereducer_api::v1::reducer_service_client::ReducerServiceClient;
use purereducer_api::v1::{self as api, HandleActionRequest, HandleActionResponse};
use purereducer_storage::Store;
use purereducer_storage::testing::{Instrumented, fresh_postgres, fresh_sqlite};
use reducerd::App;
use reducerd::config::Config;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// A running server and what a test needs to check it.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// A plaintext channel to `addr` (connected on first use, so a TLS server's tests make
    /// their own).
    pub channel: Channel,
    pub store: Arc<dyn Store>,
    /// PostgreSQL pool on the same database, for direct checks (None on SQLite).
    pub pg: Option<sqlx::PgPool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Starts a server on a new database; `tune` adjusts the default configuration.
pub async fn start(backend: Backend, tune: impl FnOnce(&mut Config)) -> TestServer {
    let (store, pg) = fresh(backend).await;
    serve_on(store, pg, tune).await
}

/// Starts a server whose store records every group commit (see [`Instrumented`]).
pub async fn start_instrumented(backend: Backend, tune: impl FnOnce(&mut Config)) -> (TestServer, Arc<Instrumented>) {
    let (store, pg) = fresh(backend).await;
    let instrumented = Instrumented::new(store);
    (serve_on(instrumented.clone(), pg, tune).await, instrumented)
}

async fn fresh(backend: Backend) -> (Arc<dyn Store>, Option<sqlx::PgPool>) {
    match backend {
        Backend::Postgres => {
            let (store, _) = fresh_postgres(20).await.expect("postgres test database");
            let pool = store.pool().clone();
            (store, Some(pool))
        }
        Backend::Sqlite => {
            let (store, _) = fresh_sqlite().await.expect("sqlite test database");
            (store, None)
        }
    }
}

/// Starts a server on `store`.
pub async fn serve_on(store: Arc<dyn Store>, pg: Option<sqlx::PgPool>, tune: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    config.dedup.cleanup_interval_seconds = 0;
    tune(&mut config);
    let app = App::with_store(config, store.clone()).expect("valid test config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(reducerd::serve(listener, app, async {
        let _ = stopped.await;
    }));
    // The listener is bound already, so connecting cannot race the server start.
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_lazy();
    TestServer {
        addr,
        channel,
        store,
        pg,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestServer {
    pub fn reducer(&self) -> ReducerServiceClient<Channel> {
        ReducerServiceClient::new(self.channel.clone())
    }

    pub fn canonical(&self) -> CanonicalStoreServiceClient<Channel> {
        CanonicalStoreServiceClient::new(self.channel.clone())
    }

    pub fn dedup(&self) -> ActionDedupServiceClient<Channel> {
        ActionDedupServiceClient::new(self.channel.clone())
    }

    pub fn pg(&self) -> &sqlx::PgPool {
        self.pg.as_ref().expect("a postgres-backed test server")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran cleanly");
        }
    }
}

/// A JSON object literal as a protobuf Struct.
pub fn object(value: Value) -> prost_types::Struct {
    reducerd::convert::json_to_struct(value.as_object().expect("object literal"))
}

/// A protobuf Struct as JSON.
pub fn json(value: &prost_types::Struct) -> Value {
    Value::Object(reducerd::convert::struct_to_json(value, "test").expect("valid struct"))
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn action(id: &str, key: &str, workflow_type: &str, action_type: &str, payload: Value) -> api::Action {
    api::Action {
        action_id: id.to_owned(),
        workflow_key: key.to_owned(),
        workflow_type: workflow_type.to_owned(),
        action_type: action_type.to_owned(),
        payload: Some(object(payload)),
        correlation_id: String::new(),
        namespace: String::new(),
    }
}

pub async fn handle(server: &TestServer, action: api::Action) -> Result<HandleActionResponse, tonic::Status> {
    server
        .reducer()
        .handle_action(HandleActionRequest { action: Some(action) })
        .await
        .map(tonic::Response::into_inner)
}

pub fn status_of(response: &HandleActionResponse) -> api::ActionStatus {
    api::ActionStatus::try_from(response.status).expect("known status")
}

/// The fields a BadRequest detail names.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

impl TestServer {
    pub fn event_bus(&self) -> purereducer_api::v1::event_bus_service_client::EventBusServiceClient<Channel> {
        purereducer_api::v1::event_bus_service_client::EventBusServiceClient::new(self.channel.clone())
    }

    pub fn projections(&self) -> purereducer_api::v1::projection_service_client::ProjectionServiceClient<Channel> {
        purereducer_api::v1::projection_service_client::ProjectionServiceClient::new(self.channel.clone())
    }

    /// Subscribes to `keys`' events, replaying each from `from_version` (0: live only); the
    /// call's error (a refused replay, say) comes back as it is.
    pub async fn subscribe_keys(
        &self,
        keys: &[&str],
        from_version: u64,
    ) -> Result<tonic::Streaming<api::SubscribeResponse>, tonic::Status> {
        self.event_bus()
            .subscribe(api::SubscribeRequest {
                filter: Some(api::SubscriptionFilter {
                    workflow_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
                    ..Default::default()
                }),
                from_version,
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

/// Starts a second server on the database of `first` (PostgreSQL only).
pub async fn start_on_same_database(first: &TestServer, tune: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = Config::default();
    config.dedup.cleanup_interval_seconds = 0;
    tune(&mut config);
    let store: Arc<dyn Store> = Arc::new(purereducer_storage::postgres::PgStore::from_pool(first.pg().clone()));
    let app = App::with_store(config, store.clone()).expect("valid test config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(reducerd::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect");
    TestServer {
        addr,
        channel,
        store,
        pg: first.pg.clone(),
        stop: Some(stop),
        task: Some(task),
    }
}
