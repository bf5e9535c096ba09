package embedded

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/shared/testkit"
)

func TestEdgeOptionsRejectBadSettings(t *testing.T) {
	t.Parallel()
	tlsf := testkit.MakeTLSFiles(t)
	hub := []string{"nats-leaf://127.0.0.1:7422"}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		e    Edge
		want string
	}{
		{"no node", Edge{Hub: hub}, "edge node is empty"},
		{"slash in node", Edge{Node: "a/b", Hub: hub}, "cannot be a JetStream domain"},
		{"dot in node", Edge{Node: "a.b", Hub: hub}, "cannot be a JetStream domain"},
		{"no hub", Edge{Node: "n1"}, "at least one hub URL"},
		{"hub without host", Edge{Node: "n1", Hub: []string{"hub:7422"}}, "want nats-leaf://host:port"},
		{"unreadable CA", Edge{Node: "n1", Hub: hub, CA: "/nonexistent/ca.pem"}, "hub CA"},
		{"CA not PEM", Edge{Node: "n1", Hub: hub, CA: notPEM}, "holds no PEM certificate"},
		{"key of another cert", Edge{Node: "n1", Hub: hub, Cert: tlsf.ClientCert, Key: tlsf.ServerKey}, "hub client certificate"},
		{"cert without key", Edge{Node: "n1", Hub: hub, Cert: tlsf.ClientCert}, "hub client certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := edgeOptions(Options{StoreDir: t.TempDir()}, c.e)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestEdgeOptionsLeafRemoteDomainAndSync(t *testing.T) {
	t.Parallel()
	tlsf := testkit.MakeTLSFiles(t)
	so, err := edgeOptions(Options{Host: "127.0.0.1", StoreDir: t.TempDir()}, Edge{
		Node: "web-1", Hub: []string{"nats-leaf://a:7422", " nats-leaf://b:7422"}, Creds: "/run/hub.creds",
		CA: tlsf.CA, Cert: tlsf.ClientCert, Key: tlsf.ClientKey, Sync: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if so.JetStreamDomain != "web-1" || !so.JetStream || so.ServerName != "dockcast-web-1" {
		t.Fatalf("domain %q js %v name %q", so.JetStreamDomain, so.JetStream, so.ServerName)
	}
	if so.SyncAlways || so.SyncInterval != 2*time.Second {
		t.Fatalf("sync always=%v interval=%v", so.SyncAlways, so.SyncInterval)
	}
	if len(so.LeafNode.Remotes) != 1 {
		t.Fatalf("%d remotes", len(so.LeafNode.Remotes))
	}
	r := so.LeafNode.Remotes[0]
	if len(r.URLs) != 2 || r.URLs[1].Host != "b:7422" || r.Credentials != "/run/hub.creds" {
		t.Fatalf("remote %+v", r)
	}
	if !slices.Equal(r.DenyExports, []string{"docker.events.>"}) || !slices.Equal(r.DenyImports, []string{"docker.events.>"}) {
		t.Fatalf("deny exports %v imports %v", r.DenyExports, r.DenyImports)
	}
	if !r.TLS || r.TLSConfig == nil || r.TLSConfig.RootCAs == nil || len(r.TLSConfig.Certificates) != 1 {
		t.Fatalf("TLS not configured: %v %+v", r.TLS, r.TLSConfig)
	}
	always, err := edgeOptions(Options{StoreDir: t.TempDir()}, Edge{Node: "n", Hub: []string{"nats-leaf://h:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !always.SyncAlways || always.LeafNode.Remotes[0].TLS {
		t.Fatalf("default sync always=%v, tls=%v", always.SyncAlways, always.LeafNode.Remotes[0].TLS)
	}
	// A silent leaf link is noticed within about a minute (publisher/app
	// TestEdgeSilentCutIsNoticed shows it with shorter pings).
	if always.PingInterval != DefaultLeafPing || always.MaxPingsOut != LeafPingsOut || so.PingInterval != DefaultLeafPing {
		t.Fatalf("pings every %v, %d out; want %v, %d", always.PingInterval, always.MaxPingsOut, DefaultLeafPing, LeafPingsOut)
	}
}

func TestStartEdgeAppliesSync(t *testing.T) {
	t.Parallel()
	hub := testkit.StartHub(t, testkit.HubOptions{})
	for _, sync := range []time.Duration{0, 3 * time.Second} {
		s, err := StartEdge(Options{Host: "127.0.0.1", StoreDir: t.TempDir()}, Edge{Node: "n1", Hub: []string{hub.LeafURL()}, Sync: sync})
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.ns.JetStreamConfig()
		s.Shutdown()
		if cfg.Domain != "n1" || cfg.SyncAlways != (sync == 0) || (sync != 0 && cfg.SyncInterval != sync) {
			t.Fatalf("sync %v: running with domain %q always %v interval %v", sync, cfg.Domain, cfg.SyncAlways, cfg.SyncInterval)
		}
	}
}

func TestLocalStreamGeneration(t *testing.T) {
	t.Parallel()
	l := LocalStream{Central: "DOCKER_EVENTS", Node: "web_1"}
	for name, want := range map[string]int64{
		"DOCKER_EVENTS_web_1":            0,
		"DOCKER_EVENTS_web_1_1764097465": 1764097465,
		"DOCKER_EVENTS_web_1_12":         -1, // not unix seconds
		"DOCKER_EVENTS_web_1x":           -1,
		"DOCKER_EVENTS_web":              -1,
		"DOCKER_EVENTS_web_1_17640974x5": -1,
		"KV_DOCKCAST_EDGE":               -1,
	} {
		if got := l.generation(name); got != want {
			t.Errorf("generation(%q) = %d, want %d", name, got, want)
		}
	}
}
