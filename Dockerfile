# Tollgate as a container: a build stage with the Rust toolchain, then a small Debian
# runtime with the one binary, run as an unprivileged user, its data on a volume.
#   docker build -t tollgate .
#   docker run -p 8080:8080 -v tollgate-data:/var/lib/tollgate \
#     -e TOLLGATE_PUBLIC_URL=http://localhost:8080 tollgate
# See docs/deployment.md (and compose.yaml for three nodes on PostgreSQL and Redis).

FROM rust:1.95-slim-bookworm AS build
# OpenSSL's headers: the passkey library links it. (Debian package versions are not
# pinned: a stable release drops superseded versions, which would break the build; the
# base image tag pins the release.)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
RUN cargo build --release --locked --bin tollgate \
 && strip target/release/tollgate

FROM debian:bookworm-slim
# libssl3 for the binary, CA certificates for outbound TLS (AI providers, identity
# providers, SMTP), curl for the health check.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/tollgate --shell /usr/sbin/nologin tollgate \
 && install -d -o tollgate -g tollgate -m 0700 /var/lib/tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
ENV TOLLGATE_DATA_DIR=/var/lib/tollgate \
    TOLLGATE_LISTEN=0.0.0.0:8080
VOLUME ["/var/lib/tollgate"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve"]
