# cync-bridge as a container image, for users: `docker build -t cync-bridge .` (or
# `docker compose build`). Two stages: the Rust toolchain image compiles the release binary from
# the committed Cargo.lock; a slim Debian runtime carries only the binary and what it loads at run
# time (OpenSSL 3 for the device TLS listener and MQTT over TLS, CA certificates for brokers with
# public certificates, time zones for the 0xC8 local-time answers).
#
# CI cannot pull base images, so it tests the same runtime contract (the instructions after the
# runtime FROM) through docker/scratch.Dockerfile; tests/compose.rs keeps the two in step.

FROM rust:1-bookworm AS builder
WORKDIR /src
# rust:*-bookworm already carries a C compiler, pkg-config and libssl-dev for openssl-sys.
COPY Cargo.toml Cargo.lock ./
# Cargo.toml names the benches, so the manifest only loads with them present.
COPY benches ./benches
COPY src ./src
# profile.release keeps line tables for profiling; the image does not need them (symbols stay).
RUN cargo build --release --locked --bin cync-bridge \
    && install -m 0755 target/release/cync-bridge /cync-bridge \
    && strip --strip-debug /cync-bridge

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin cync \
    && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=builder /cync-bridge /usr/local/bin/cync-bridge

# --- runtime contract (docker/scratch.Dockerfile repeats it from here on) ---
# The generated device certificate lives in /data; listen on every interface inside the container
# (publish the ports you want with -p).
ENV CYNC_DATA_DIR=/data \
    CYNC_SERVER__LISTEN=0.0.0.0:23779 \
    CYNC_TELEMETRY__LISTEN=0.0.0.0:9464
USER 10001:10001
VOLUME ["/data"]
# 23779: devices (TLS). 9464: /metrics and /healthz.
EXPOSE 23779 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/cync-bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cync-bridge"]
CMD ["serve"]
