# clawgate in a container.
#   docker build -t clawgate .
#   docker run -d --name clawgate -p 127.0.0.1:18789:18789 -v clawgate-data:/data \
#     -e CLAWGATE_GATEWAY_TOKEN="$(cat ~/.clawgate-docker-token)" clawgate
# Inside the container the gateway binds 0.0.0.0 (the CMD's --host), which the exposure
# guardrail allows only with token auth and a strong token: $CLAWGATE_GATEWAY_TOKEN,
# gateway.auth.tokenFile (a Docker secret), or the one generated on first run in
# /data/credentials/gateway-token. Publish the port on the host's loopback only.
# docs/service.md has docker run, compose with nginx, and the checks (hadolint is not run here).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p clawgate \
 && install -m 0755 target/release/clawgate /usr/local/bin/clawgate

FROM debian:bookworm-slim
# ca-certificates: HTTPS to model providers and messaging platforms.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 clawgate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin clawgate \
 && install -d -m 0700 -o 10001 -g 10001 /data
COPY --from=build /usr/local/bin/clawgate /usr/local/bin/clawgate
ENV CLAWGATE_HOME=/data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 18789
# Slim images have no curl: the binary checks /healthz on the container's loopback itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["clawgate", "gateway", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["clawgate"]
CMD ["gateway", "run", "--host", "0.0.0.0"]
