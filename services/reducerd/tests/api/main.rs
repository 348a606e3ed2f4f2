//! End-to-end tests of reducerd through its gRPC API, on real PostgreSQL and SQLite.

mod auth;
mod bad_input;
mod battery;
mod broker;
mod canonical_store;
mod certs;
mod concurrency;
mod dead_letters;
mod dedup;
mod engine;
mod grpcurl;
mod handle_action;
mod history;
mod jwt;
mod kafka;
mod kafka_tls;
mod limits;
mod pipeline;
mod relay;
mod repair;
mod runbook_sql;
mod streams;
mod support;
mod telemetry;
mod tenancy;
mod tls;
