# syntax=docker/dockerfile:1
# The parent image: containment-chamber-enclave-proxy, the entrypoint script, nitro-cli and
# the EIF. Build the EIF first (Dockerfile.enclave + nitro-cli build-enclave) and put it next to
# this file as enclave.eif.

FROM rust:1.90-alpine@sha256:b4b54b176a74db7e5c68fdfe6029be39a02ccbcfe72b6e5a3e18e2c61b57ae26 AS build
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    CARGO_HOME=/cargo \
    CARGO_INCREMENTAL=0 \
    RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=/src=. --remap-path-prefix=/cargo=cargo"
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY enclave enclave
COPY parent-proxy parent-proxy
COPY ccctl ccctl
COPY sandbox sandbox
COPY tests tests
# ccctl without its default `demo` feature: the sandbox (local KMS, Kubernetes API double, CMS
# encoder) never ships next to the enclave's keys.
RUN cargo build --locked --release -p containment-chamber-enclave-proxy --features vsock \
 && cargo build --locked --release -p ccctl --no-default-features --features vsock \
 && install -D -m 0555 target/release/containment-chamber-enclave-proxy /out/containment-chamber-enclave-proxy \
 && install -D -m 0555 target/release/ccctl /out/ccctl

FROM amazonlinux:2023@sha256:694092ae18877ed4e3cb9b643759ba95df1f12af12528fefa18f60f79d4c1568
ARG NITRO_CLI_VERSION=1.4.2
RUN dnf install -y "aws-nitro-enclaves-cli-${NITRO_CLI_VERSION}" \
 && dnf clean all \
 && rm -rf /var/cache/dnf
COPY --from=build /out/containment-chamber-enclave-proxy /usr/local/bin/containment-chamber-enclave-proxy
COPY --from=build /out/ccctl /usr/local/bin/ccctl
COPY --chmod=0555 scripts/enclave-entrypoint.sh /usr/local/bin/enclave-entrypoint.sh
COPY --chmod=0444 enclave.eif /home/enclave.eif
ENV EIF_PATH=/home/enclave.eif
# Metrics and API are forwarded into the enclave by the entrypoint's ingress.
EXPOSE 9000 3000
ENTRYPOINT ["/usr/local/bin/enclave-entrypoint.sh"]
