# corral's node agent image: docker build -t corral .
#
# Build stage: cgo is required (pg_query_go links PostgreSQL's parser).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-X main.version=${VERSION}" -o /corral ./cmd/corral

# Runtime: the same Debian release as the build (the binary links glibc).
# Not distroless: the DaemonSet starts the agent through util-linux's nsenter
# (part of bookworm-slim) to enter the host's cgroup namespace.
# ca-certificates: OIDC issuers, webhooks and upstream TLS verify against it.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /corral /usr/local/bin/corral
# Root, by necessity: the agent loads eBPF programs, enters other network
# namespaces and reads other processes' /proc entries, which take
# capabilities (BPF, NET_ADMIN, SYS_ADMIN, SYS_PTRACE, ...) that a non-root
# user does not keep across exec. The DaemonSet drops every other
# capability.
USER 0:0
ENTRYPOINT ["/usr/local/bin/corral"]
CMD ["agent", "--config", "/etc/corral/corral.yaml"]
