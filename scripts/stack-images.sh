#!/usr/bin/env bash
# Builds the stack's three images locally, FROM scratch, from the static
# binaries in bin/ (run `make build` first): dockcast/nats, dockcast/publisher
# and dockcast/gateway, tagged ${DOCKCAST_TAG:-local}. No registry is needed.
# Each image gets the health probe (gateway/cmd/healthcheck) and the host's
# CA roots, so that TLS to a remote NATS works inside scratch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${DOCKCAST_TAG:-local}"
ca="${DOCKCAST_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}"
for b in nats-server publisher gateway; do
	if [ ! -x "$root/bin/$b" ]; then
		echo "stack-images: $root/bin/$b is missing: run \`make build\` first" >&2
		exit 1
	fi
done
if [ ! -s "$ca" ]; then
	echo "stack-images: no CA bundle at $ca (install ca-certificates, or set DOCKCAST_CA_FILE)" >&2
	exit 1
fi
if ! docker info >/dev/null 2>&1; then
	echo "stack-images: no Docker engine answers" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$root/gateway" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/healthcheck" ./cmd/healthcheck)

build() { # name binary
	local ctx="$work/$1"
	mkdir -p "$ctx"
	cp "$root/deploy/$1/Dockerfile" "$ca" "$work/healthcheck" "$root/bin/$2" "$ctx/"
	[ "$(basename "$ca")" = ca-certificates.crt ] || mv "$ctx/$(basename "$ca")" "$ctx/ca-certificates.crt"
	if [ "$1" = nats ]; then mkdir -p "$ctx/data"; fi
	# The legacy builder works offline and with every engine; BuildKit
	# would want to fetch its frontend.
	local out
	if ! out="$(DOCKER_BUILDKIT=0 docker build -q -t "dockcast/$1:$tag" "$ctx" 2>&1)"; then
		echo "$out" >&2
		echo "stack-images: building dockcast/$1:$tag failed" >&2
		exit 1
	fi
	echo "built dockcast/$1:$tag"
}
build nats nats-server
build publisher publisher
build gateway gateway
