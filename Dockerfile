# Multi-stage build: a static musl binary on a distroless, non-root base.
FROM rust:1.89-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p kvbind && cp target/release/kvbind /kvbind

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /kvbind /kvbind
USER 65532:65532
ENTRYPOINT ["/kvbind"]
CMD ["run"]
