package hub

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFeedDoesNotImportTheTransport: the live feed, the replay and the
// client they feed know no WebSocket library: close codes and frames are
// the client package's, so that other transports (SSE, Docker's events
// API) reuse them as they are.
func TestFeedDoesNotImportTheTransport(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{".", "../replay", "../client"} {
		out, err := exec.Command("go", "list", "-deps", "-test=false", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "melody") || strings.Contains(dep, "gorilla/websocket") || strings.HasSuffix(dep, "/gateway/ws") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
