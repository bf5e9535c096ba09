#!/usr/bin/env bash
# Builds the benchmark peers that are not Go modules of this repository
# into bin/tools (git-ignored with bin/), only when missing: Centrifugo
# v6.9.1 from the Go module proxy (about 100 s on two cores).
set -euo pipefail
tools="$(cd "$(dirname "$0")/.." && pwd)/bin/tools"
mkdir -p "$tools"
if [ ! -x "$tools/centrifugo" ]; then
	echo "make bench: building Centrifugo v6.9.1 into bin/tools (go install, once)" >&2
	GOBIN="$tools" CGO_ENABLED=0 go install github.com/centrifugal/centrifugo/v6@v6.9.1
fi
