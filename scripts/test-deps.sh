#!/usr/bin/env bash
# Checks (and where it can, installs) what `make test` needs: Go, a running
# Docker engine, a C compiler for the race detector, and Chromium for the
# live page's browser tests.
set -euo pipefail
missing=0
if ! command -v go >/dev/null; then
	echo "make test: Go is not installed (https://go.dev/dl)" >&2; missing=1
fi
if ! command -v gcc >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq && apt-get install -y -qq gcc >/dev/null
	else
		echo "make test: gcc is missing (the race detector needs cgo): apt-get install gcc" >&2; missing=1
	fi
fi
# The live page's browser tests drive Debian's headless Chromium.
if ! command -v chromium >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "make test: installing chromium (apt-get) for the page's browser tests" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
	else
		echo "make test: chromium is missing (the live page's browser tests need it): sudo apt-get install chromium" >&2; missing=1
	fi
fi
# The stack's test runs docker-compose.yml with `docker compose` (v2), else
# docker-compose (v1). Compose v2 is built from its Go module (the module
# proxy serves it; no registry or release download is needed) and installed
# as the Docker CLI plugin, once: about three minutes on two cores.
compose_v2=v2.40.3
compose_plugin="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
if ! docker compose version >/dev/null 2>&1 && command -v go >/dev/null; then
	echo "make test: building Docker Compose $compose_v2 (go module github.com/docker/compose/v2) into $compose_plugin" >&2
	if ! "$(dirname "$0")/build-compose.sh" "$compose_v2" "$compose_plugin"; then
		echo "make test: could not build Docker Compose $compose_v2; the stack's test will use docker-compose (v1) if it is installed" >&2
	fi
fi
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "make test: installing docker-compose (apt-get) for the stack's test" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
	else
		echo "make test: neither 'docker compose' nor docker-compose is installed (the stack's test needs one)" >&2; missing=1
	fi
fi
if ! docker info >/dev/null 2>&1; then
	echo "make test: no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}); start dockerd" >&2; missing=1
fi
exit $missing
