# The kvbind image for builders with a registry. Its final stage is image/Containerfile's,
# on the root filesystem image/rootfs assembles, so it is the image `image/build` makes
# without one (crates/kvbind/tests/release.rs holds the two stages equal).
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# apt's lists, for image/rootfs to fetch libc6, libgcc-s1 and ca-certificates.
RUN apt-get update \
 && cargo build --release --locked -p kvbind --no-default-features \
 && image/rootfs target/release/kvbind /out/rootfs

FROM scratch
COPY --from=build /out/rootfs/ /
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
ENTRYPOINT ["/kvbind"]
CMD ["run"]
