# syntax=docker/dockerfile:1
# Multi-stage build of the pbx binary: compile in the Rust image, run in a
# slim Debian image as an unprivileged user.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target directory between builds;
# the binary is copied out because the target mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pbx --bin pbx \
    && cp target/release/pbx /usr/local/bin/pbx

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system pbx \
    && useradd --system --gid pbx --home-dir /var/lib/pbx --shell /usr/sbin/nologin pbx \
    && mkdir -p /var/lib/pbx /etc/pbx \
    && chown pbx:pbx /var/lib/pbx
COPY --from=build /usr/local/bin/pbx /usr/local/bin/pbx
COPY configs/ /etc/pbx/

# Inside a container the HTTP API must listen on all interfaces to be
# published; the RTP range is kept small because each published port costs
# the container engine a forwarding rule.
ENV PBX_CONFIG=/etc/pbx/pbx.toml \
    PBX_DATA_DIR=/var/lib/pbx \
    PBX_SIP_LISTEN=0.0.0.0:5060 \
    PBX_HTTP_LISTEN=0.0.0.0:8080 \
    PBX_RTP_PORTS=20000-20199

USER pbx
WORKDIR /var/lib/pbx
VOLUME ["/var/lib/pbx"]
EXPOSE 5060/udp 5060/tcp 8080/tcp 20000-20199/udp

# bash's /dev/tcp avoids installing curl in the runtime image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/pbx"]
