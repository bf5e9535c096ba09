#!/usr/bin/env bash
# Runs Docker Compose on the repository's docker-compose.yml: `docker compose`
# (v2) when the Docker CLI has it, else `docker-compose` (v1). Arguments are
# passed through: ./scripts/compose.sh -p myproj up -d
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null; then
	compose=(docker-compose)
else
	echo "compose: neither \`docker compose\` (v2) nor \`docker-compose\` (v1) is installed" >&2
	exit 1
fi
files=(-f "$root/docker-compose.yml")
# Local settings (tokens file, exposure, official NATS image): README.md ("Production configuration").
if [ -f "$root/docker-compose.override.yml" ]; then files+=(-f "$root/docker-compose.override.yml"); fi
# Project options (-p NAME) must come before the subcommand: pass them first.
exec "${compose[@]}" --project-directory "$root" "${files[@]}" "$@"
