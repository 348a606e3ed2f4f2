# syntax=docker/dockerfile:1.7
#
# reducerd container image: one binary for every Pure Reducer role (pick them with --roles or
# PURE_REDUCER_ROLES) plus `reducerd migrate`. Build from the repository root:
#   docker build -t pure-reducer/reducerd:local .
# The compose stack (deploy/compose) and the Helm chart (deploy/helm/pure-reducer) use it.

############################ builder ############################
FROM rust:1.95-bookworm AS builder

WORKDIR /src
# The whole workspace (see .dockerignore for what is left out). protoc comes from a vendored
# crate and librdkafka / libsqlite3 are built from bundled sources with the gcc, make and
# OpenSSL headers (libssl-dev, for librdkafka's TLS and SASL/SCRAM) this image already has, so no
# extra packages are needed.
COPY . .

# Cache mounts keep the crates.io index, downloaded crates and compiled dependencies between
# builds; the binary is copied out of the cached target dir because cache mounts are not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p reducerd \
    && install -D -m 0755 target/release/reducerd /out/reducerd

############################ runtime ############################
FROM debian:bookworm-slim AS runtime

# ca-certificates for TLS to managed PostgreSQL/Kafka/OTLP endpoints and libssl3 for librdkafka's
# TLS; nothing else is needed at run time (librdkafka and SQLite are linked in).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 reducerd \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin reducerd \
    && install -d -o 10001 -g 10001 -m 0750 /app

COPY --from=builder /out/reducerd /usr/local/bin/reducerd
# The SQL migrations, readable by `reducerd migrate` as migrations/postgres from the working
# directory. Owned by root so the service user cannot alter them.
COPY --chown=root:root migrations/ /app/migrations/

# /app is the only place the service user may write: the embedded default keeps its SQLite file
# (pure-reducer.db) in the working directory. Kubernetes runs with a read-only root filesystem
# and PostgreSQL, so it never writes there.
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# gRPC (with health checking and reflection), Prometheus /metrics. Outside a container the
# default is loopback; a container is reached through its network, so it listens on every
# interface. Turn authentication on (auth.mode) before publishing these ports.
ENV PURE_REDUCER_LISTEN=0.0.0.0:50051 \
    PURE_REDUCER_METRICS_LISTEN=0.0.0.0:8000
EXPOSE 50051 8000

LABEL org.opencontainers.image.title="reducerd" \
      org.opencontainers.image.description="Pure Reducer server: exactly-once workflow state over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"

ENTRYPOINT ["/usr/local/bin/reducerd"]
