#!/usr/bin/env bash
# Runs Docker Compose on the repository's docker-compose.yml: `docker compose`
# (v2) when the Docker CLI has it, else `docker-compose` (v1). Arguments are
# passed through: ./scripts/compose.sh -p myproj up -d (with -f FILE, that
# file alone: ./scripts/compose.sh -p edge -f deploy/edge/engine.yml up -d)
# DOCKCAST_COMPOSE=v1 or v2 insists on one (and fails when it is missing).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want="${DOCKCAST_COMPOSE:-}"
case "$want" in
"" | v1 | v2) ;;
*)
	echo "compose: DOCKCAST_COMPOSE=$want: expected v1, v2 or nothing" >&2
	exit 1
	;;
esac
if [ "$want" != v1 ] && docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif [ "$want" != v2 ] && command -v docker-compose >/dev/null; then
	compose=(docker-compose)
elif [ "$want" = v2 ]; then
	echo "compose: DOCKCAST_COMPOSE=v2, but \`docker compose\` does not work (scripts/test-deps.sh installs the plugin)" >&2
	exit 1
elif [ "$want" = v1 ]; then
	echo "compose: DOCKCAST_COMPOSE=v1, but docker-compose is not installed" >&2
	exit 1
else
	echo "compose: neither \`docker compose\` (v2) nor \`docker-compose\` (v1) is installed" >&2
	exit 1
fi
# Compose files given before the subcommand (-f deploy/edge/centre.yml, …):
# those alone, their relative paths resolved from the first one's
# directory, as compose does. (After the subcommand, -f is its own flag:
# `logs -f`.)
prev=""
for a in "$@"; do
	case "$prev" in -p | --project-name | --env-file | --profile)
		prev=""
		continue
		;;
	esac
	case "$a" in
	-f | --file | --file=*) exec "${compose[@]}" "$@" ;;
	-*) prev="$a" ;;
	*) break ;;
	esac
done
files=(-f "$root/docker-compose.yml")
# Local settings (tokens file, exposure, official NATS image): README.md ("Production configuration").
if [ -f "$root/docker-compose.override.yml" ]; then files+=(-f "$root/docker-compose.override.yml"); fi
# Project options (-p NAME) must come before the subcommand: pass them first.
exec "${compose[@]}" --project-directory "$root" "${files[@]}" "$@"
