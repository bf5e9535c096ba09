#!/usr/bin/env bash
# Checks (and where it can, installs) what `make test` needs: Go, a running
# Docker engine, and a C compiler for the race detector.
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
if ! docker info >/dev/null 2>&1; then
	echo "make test: no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}); start dockerd" >&2; missing=1
fi
exit $missing
