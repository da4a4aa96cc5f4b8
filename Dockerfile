# Slipway's production image: the `slipway` binary on distroless/cc (glibc and libgcc only,
# no shell, no package manager), as the nonroot user (65532). Every component runs from it:
# `slipway api | controller | webhook` (see charts/slipway).
#
#   docker build -t ghcr.io/slipway-dev/slipway:0.1.0 .
#
# Run it with a read-only root filesystem; the chart mounts /tmp (and the webhook's
# certificate directory) as emptyDirs. hack/images.sh builds the same layout offline, from
# the local release build and Debian's libc6/libgcc-s1 packages, for the local node.
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slipway && cp target/release/slipway /slipway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /slipway /usr/local/bin/slipway
USER 65532:65532
EXPOSE 8080 8081 8443
ENTRYPOINT ["/usr/local/bin/slipway"]
