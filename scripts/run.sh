#!/usr/bin/env bash
# make run: the publisher (embedded JetStream on 127.0.0.1:4222) and the
# gateway (http://localhost:8080); Ctrl-C stops both.
set -uo pipefail
cd "$(dirname "$0")/.."
pub= gw=
stop() {
	trap - INT TERM
	kill -TERM $pub $gw 2>/dev/null
	wait $pub $gw 2>/dev/null
	exit "${1:-0}"
}
trap 'stop 0' INT TERM
./bin/publisher & pub=$!
for _ in $(seq 1 100); do
	if curl -fsS "http://127.0.0.1${PUBLISHER_HTTP_ADDR:-:8081}/healthz" >/dev/null 2>&1; then break; fi
	kill -0 $pub 2>/dev/null || { echo "publisher exited" >&2; wait $pub; exit 1; }
	sleep 0.1
done
./bin/gateway & gw=$!
echo "dockcast: live page at http://localhost${GATEWAY_ADDR:-:8080}  (Ctrl-C stops both)"
wait -n $pub $gw
code=$?
[ "$code" = 0 ] || echo "dockcast: a service exited (status $code); stopping the other" >&2
stop "$code"
