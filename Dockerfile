# syntax=docker/dockerfile:1
#
# JupyterHealth Vault: one static binary on a distroless, non-root base.
#
#   docker build --build-arg VERSION=$(git describe --always) -t jupyterhealth-vault .
#   vault keys new-root --out ./secrets/root.key     # once, on the host; back it up apart
#   docker run -d --name vault -p 127.0.0.1:8080:8080 \
#     -v vault-data:/data \
#     -v "$PWD/secrets/root.key:/run/secrets/vault_root_key:ro" \
#     -e VAULT_BASE_URL=https://vault.example.org \
#     jupyterhealth-vault
#
# Prometheus metrics have their own listener, on the container's loopback by
# default; to scrape them from the host add
#     -e VAULT_METRICS_ADDR=0.0.0.0:9464 -p 127.0.0.1:9464:9464
# The health check asks /healthz on the public port and needs neither.
#
# See docs/self-hosting.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/vault ./cmd/vault \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="JupyterHealth Vault" \
      org.opencontainers.image.description="Encrypted, self-hosted store for wearable and glucose readings, with a tamper-evident consent ledger and exports re-encrypted to a JupyterHub key" \
      org.opencontainers.image.source="https://github.com/jupyterhealth/vault" \
      org.opencontainers.image.documentation="https://github.com/jupyterhealth/vault/blob/main/docs/self-hosting.md" \
      org.opencontainers.image.licenses="BSD-3-Clause" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/vault /usr/local/bin/vault
# The data directory belongs to the image's non-root user (65532), so a
# new named volume starts out owned by it, mode 0700.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data
USER 65532:65532
ENV VAULT_DATA=/data \
    VAULT_ADDR=0.0.0.0:8080 \
    VAULT_ROOT_KEY_FILE=/run/secrets/vault_root_key
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/vault", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/vault"]
CMD ["serve"]
