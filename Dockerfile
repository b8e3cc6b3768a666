# Aurora: one binary serving the core API (:8080) and the crawler API (:8001).
#
#   docker build -t aurora:latest .
#
# Behind a TLS-intercepting proxy, hand the builder the proxy's CA (PEM text). It is trusted by
# the builder stage only (cargo, curl) and never reaches the runtime image:
#
#   docker build --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)" -t aurora:latest .
#
# (scripts/build-image does that with the host's local CAs, after making missing base images.)

# ---------------------------------------------------------------------------------------------
# Builder: compiles the release binary and fetches the default embedding model.
# ---------------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Optional extra CA certificates (PEM text) for builds behind a TLS-intercepting proxy.
ARG EXTRA_CA_CERTS=""

# Build tools: make (jemalloc's configure + make), gcc/libc6-dev, pkg-config; curl + unzip for
# scripts/model. The system CA bundle is saved before any extra CA is added: it is the one the
# runtime image gets.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates curl gcc libc6-dev make pkg-config unzip; \
    rm -rf /var/lib/apt/lists/*; \
    cp /etc/ssl/certs/ca-certificates.crt /runtime-ca-certificates.crt; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/aurora-build-extra.crt; \
        update-ca-certificates; \
    fi

# cargo (libcurl) and curl read the system bundle, which now includes any extra CA.
ENV CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

WORKDIR /src

# The embedding models and ONNX Runtime (sha256-checked), in their own layer: it changes only
# with the script.
COPY scripts/model scripts/model
RUN AURORA_MODELS_DIR=/models AURORA_CACHE_DIR=/tmp/aurora-cache scripts/model \
    && rm -rf /tmp/aurora-cache

# Dependencies only, cached until a manifest, the lock file or .cargo/config.toml (jemalloc's
# build-time malloc_conf) changes: the manifests with stub targets. Cargo refuses a manifest whose
# [[bench]] files are missing, so the benches get stubs too; examples and tests are discovered and
# need none.
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/Cargo.toml
COPY .cargo/config.toml .cargo/config.toml
RUN set -eux; \
    mkdir -p src actors/src benches; \
    echo 'fn main() {}' > src/main.rs; \
    : > src/lib.rs; \
    : > actors/src/lib.rs; \
    for bench in extract knowledge auth embed; do echo 'fn main() {}' > "benches/$bench.rs"; done; \
    cargo build --release --locked --bin aurora; \
    rm -rf src actors/src

# The real sources (src/settings.rs compiles config/default.toml in with include_str!). Their
# mtimes can be older than the stub build's, so touch the crate roots to make cargo rebuild the
# two workspace crates (and only those).
COPY config/default.toml config/default.toml
COPY src src
COPY actors/src actors/src
COPY benches benches
RUN set -eux; \
    touch src/main.rs src/lib.rs actors/src/lib.rs; \
    cargo build --release --locked --bin aurora; \
    install -D -m 0755 target/release/aurora /out/aurora; \
    /out/aurora --version

# ---------------------------------------------------------------------------------------------
# Runtime: debian slim, the binary, its config, the models and headless Chromium; runs as an
# unprivileged user.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim

ARG AURORA_UID=10001
ARG AURORA_GID=10001

# Chromium and chromedriver render the pages that need JavaScript, Firecrawl's actions and
# screenshots (about 700 MB of the image); fonts-liberation gives screenshots real glyphs. First
# in the stage, so rebuilding Aurora never downloads them again.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        chromium chromium-driver fonts-liberation; \
    rm -rf /var/lib/apt/lists/*

RUN set -eux; \
    groupadd --system --gid "$AURORA_GID" aurora; \
    useradd --system --uid "$AURORA_UID" --gid aurora --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin aurora; \
    mkdir -p /data /etc/ssl/certs; \
    chown aurora:aurora /data

# The stock CA bundle for outbound HTTPS (crawling, LLM APIs), without any build-time extra CA.
COPY --from=builder /runtime-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/aurora /usr/local/bin/aurora
COPY --from=builder /models /opt/aurora/models
COPY config/default.toml config/production.toml /etc/aurora/

# Everything else is configured through AURORA__SECTION__KEY variables at run time.
# Chromium's own sandbox needs user namespaces, which Docker's default seccomp profile refuses;
# the container is the browser's sandbox here, and every request it makes still passes Aurora's
# SSRF-guarded proxy.
ENV AURORA_CONFIG_DIR=/etc/aurora \
    AURORA_ENV=production \
    AURORA__DATA_DIR=/data \
    AURORA__SERVER__HOST=0.0.0.0 \
    AURORA__EMBEDDING__MODEL_DIR=/opt/aurora/models/all-minilm-l6-v2 \
    AURORA__EMBEDDING__INT8_MODEL_DIR=/opt/aurora/models/all-minilm-l6-v2-int8 \
    AURORA__EMBEDDING__ONNXRUNTIME=/opt/aurora/models/onnxruntime/libonnxruntime.so.1.31.1 \
    AURORA__BROWSER__SANDBOX=false \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

VOLUME ["/data"]
WORKDIR /data
USER ${AURORA_UID}:${AURORA_GID}

EXPOSE 8080 8001
STOPSIGNAL SIGTERM

# No curl in the image and no health subcommand in the binary: bash's /dev/tcp sends a plain
# HTTP/1.0 request to the core port's /health and checks the status line for 200.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${AURORA__SERVER__CORE_PORT:-8080} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 4 status <&3 && [[ $status == *' 200 '* ]]"]

ENTRYPOINT ["aurora"]
CMD ["serve"]
