#!/usr/bin/env bash
# Builds Docker Compose v2 from its Go module and installs it as a Docker CLI
# plugin: ./scripts/build-compose.sh v2.40.3 ~/.docker/cli-plugins/docker-compose
# The module cache is read-only, so the build runs in a writable copy of the
# module, outside any workspace (GOWORK=off), with the module's own go.sum.
set -euo pipefail
version="${1:?usage: build-compose.sh VERSION DEST}"
dest="${2:?usage: build-compose.sh VERSION DEST}"
module=github.com/docker/compose/v2
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
export GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
dir="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
	echo "build-compose: go mod download $module@$version gave no module directory" >&2
	exit 1
fi
cp -r "$dir" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
go build -trimpath -ldflags "-s -w -X $module/internal.Version=$version" -o "$work/docker-compose" ./cmd
mkdir -p "$(dirname "$dest")"
install -m 0755 "$work/docker-compose" "$dest"
"$dest" version
