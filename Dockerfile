# syntax=docker/dockerfile:1
# Build: docker build -t feedbridge .
# Run:   docker run -p 8080:8080 -v $PWD/selectors:/selectors:ro -v feedbridge-data:/data feedbridge
# The image ships no selector files: the repository's are examples and fixtures (one
# would crawl www.gov.cn), so mount your own directory at /selectors.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches tests \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/extract.rs && touch tests/integration.rs \
 && cargo build --release --locked \
 && rm -rf src benches tests
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin feedbridge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data feedbridge \
 && mkdir -p /data /selectors && chown feedbridge /data
COPY --from=build /src/target/release/feedbridge /usr/local/bin/feedbridge
USER feedbridge
ENV FEEDBRIDGE_LISTEN=0.0.0.0:8080 \
    FEEDBRIDGE_DATA=/data \
    FEEDBRIDGE_SELECTORS=/selectors \
    FEEDBRIDGE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD ["feedbridge", "healthcheck"]
ENTRYPOINT ["feedbridge"]
CMD ["serve"]
