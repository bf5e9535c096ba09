package testkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterOptions shape a NATSCluster; zero values take the defaults.
type ClusterOptions struct {
	// Size is the number of servers (default 3); a single server runs
	// standalone (no cluster block).
	Size int
	// Name is the cluster's name (default "c1"); servers are <Name>-n1, …
	Name string
	// Domain, if set, is the servers' JetStream domain (edge mode's hub).
	Domain string
	// LeafNodes opens a leaf-node listener on every server, with
	// no_advertise so that leafs behind a proxy keep using the proxy.
	LeafNodes bool
	// Extra is configuration appended to every server's file.
	Extra string
}

// NATSCluster is a JetStream cluster of bin/nats-server processes on
// 127.0.0.1, each with its own client, monitoring, route (and leaf) port
// and store; servers can be killed and restarted one by one or all at once.
// Ports and stores stay the same across restarts.
type NATSCluster struct {
	t       testing.TB
	Opts    ClusterOptions
	Servers []*ClusterServer
}

// ClusterServer is one server of a NATSCluster.
type ClusterServer struct {
	*Process
	Name                                  string
	Port, HTTPPort, ClusterPort, LeafPort int
	Dir                                   string // its JetStream store
	Conf                                  string // its configuration file
}

// URL is the server's client URL.
func (s *ClusterServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

// LeafURL is the server's leaf-node URL (LeafNodes only).
func (s *ClusterServer) LeafURL() string { return "nats-leaf://127.0.0.1:" + strconv.Itoa(s.LeafPort) }

// Monitor is the base URL of the server's monitoring endpoint.
func (s *ClusterServer) Monitor() string { return "http://127.0.0.1:" + strconv.Itoa(s.HTTPPort) }

// StartNATSCluster writes the servers' configuration files, starts every
// server and waits until the cluster has a JetStream meta leader and every
// server reports JetStream healthy. The processes are killed when the test
// ends.
func StartNATSCluster(t testing.TB, o ClusterOptions) *NATSCluster {
	t.Helper()
	if o.Size <= 0 {
		o.Size = 3
	}
	if o.Name == "" {
		o.Name = "c1"
	}
	c := &NATSCluster{t: t, Opts: o}
	root := t.TempDir()
	for i := range o.Size {
		s := &ClusterServer{
			Name: fmt.Sprintf("%s-n%d", o.Name, i+1),
			Port: FreePort(t), HTTPPort: FreePort(t), ClusterPort: FreePort(t),
			Dir: filepath.Join(root, fmt.Sprintf("n%d", i+1)),
		}
		if o.LeafNodes {
			s.LeafPort = FreePort(t)
		}
		c.Servers = append(c.Servers, s)
	}
	var routes []string
	for _, s := range c.Servers {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(s.ClusterPort))
	}
	for _, s := range c.Servers {
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", s.Name, s.Port, s.HTTPPort)
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n", s.Dir)
		if o.Domain != "" {
			fmt.Fprintf(&b, "  domain: %q\n", o.Domain)
		}
		b.WriteString("}\n")
		if o.Size > 1 { // one server runs standalone: a cluster of one never elects a meta leader
			fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n",
				o.Name, s.ClusterPort, strings.Join(routes, ", "))
		}
		if o.LeafNodes {
			fmt.Fprintf(&b, "leafnodes {\n  listen: \"127.0.0.1:%d\"\n  no_advertise: true\n}\n", s.LeafPort)
		}
		b.WriteString(o.Extra)
		s.Conf = filepath.Join(root, s.Name+".conf")
		if err := os.WriteFile(s.Conf, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.Servers {
		s.Process = StartProcess(t, "nats-server", []string{"-c", s.Conf})
	}
	c.WaitReady()
	return c
}

// URLs is every server's client URL, comma separated (a NATS_URL).
func (c *NATSCluster) URLs() string {
	var out []string
	for _, s := range c.Servers {
		out = append(out, s.URL())
	}
	return strings.Join(out, ",")
}

// Server returns the server called name, or nil.
func (c *NATSCluster) Server(name string) *ClusterServer {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// WaitReady waits (at most a minute) until every running server reports
// JetStream healthy and, with more than one server, one of them names a
// meta leader.
func (c *NATSCluster) WaitReady() {
	c.t.Helper()
	Eventually(c.t, time.Minute, func() error {
		leader := ""
		for _, s := range c.Servers {
			if s.Process == nil || !s.Running() {
				continue
			}
			var h struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			}
			if err := getJSON(s.Monitor()+"/healthz?js-enabled-only=true", &h); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if h.Status != "ok" {
				return fmt.Errorf("%s: healthz %s %s", s.Name, h.Status, h.Error)
			}
			var jsz struct {
				Meta *struct {
					Leader string `json:"leader"`
				} `json:"meta_cluster"`
			}
			if err := getJSON(s.Monitor()+"/jsz", &jsz); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if jsz.Meta != nil && jsz.Meta.Leader != "" {
				leader = jsz.Meta.Leader
			}
		}
		if leader == "" && c.Opts.Size > 1 {
			return errors.New("no JetStream meta leader yet")
		}
		return c.placeable()
	})
}

// placeable creates and deletes a stream replicated on every running
// server: a meta leader is elected before it knows every peer online, and
// until then a replicated stream is refused ("no suitable peers for
// placement, peer offline").
func (c *NATSCluster) placeable() error {
	var urls []string
	for _, s := range c.Servers {
		if s.Process != nil && s.Running() {
			urls = append(urls, s.URL())
		}
	}
	if c.Opts.Size <= 1 || len(urls) < 2 {
		return nil
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Timeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect to probe placement: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if c.Opts.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, c.Opts.Domain)
	}
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := "TESTKIT_PLACEMENT_PROBE"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"testkit.placement.probe"},
		Storage: jetstream.MemoryStorage, Replicas: len(urls)}); err != nil {
		return fmt.Errorf("a stream of %d replicas: %w", len(urls), err)
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		return fmt.Errorf("delete the placement probe: %w", err)
	}
	return nil
}

// StreamLeader returns the server that leads stream (in any account), as
// the running servers' monitoring reports it.
func (c *NATSCluster) StreamLeader(stream string) (*ClusterServer, error) {
	for _, s := range c.Servers {
		if s.Process == nil || !s.Running() {
			continue
		}
		var jsz struct {
			Accounts []struct {
				Streams []struct {
					Name    string `json:"name"`
					Cluster *struct {
						Leader string `json:"leader"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		if err := getJSON(s.Monitor()+"/jsz?accounts=true&streams=true", &jsz); err != nil {
			continue
		}
		for _, a := range jsz.Accounts {
			for _, st := range a.Streams {
				if st.Name == stream && st.Cluster != nil && st.Cluster.Leader != "" {
					if l := c.Server(st.Cluster.Leader); l != nil {
						return l, nil
					}
				}
			}
		}
	}
	return nil, fmt.Errorf("no leader known for stream %s", stream)
}

// WaitStreamLeader waits (at most timeout) for stream to have a leader
// other than not (nil: any) and returns it.
func (c *NATSCluster) WaitStreamLeader(stream string, not *ClusterServer, timeout time.Duration) *ClusterServer {
	c.t.Helper()
	var leader *ClusterServer
	Eventually(c.t, timeout, func() error {
		l, err := c.StreamLeader(stream)
		if err != nil {
			return err
		}
		if l == not {
			return fmt.Errorf("stream %s still led by %s", stream, l.Name)
		}
		leader = l
		return nil
	})
	return leader
}

// Kill stops the server with SIGKILL.
func (s *ClusterServer) Kill() { s.Stop(syscall.SIGKILL) }

// StopAll stops every server with sig.
func (c *NATSCluster) StopAll(sig syscall.Signal) {
	for _, s := range c.Servers {
		s.Stop(sig)
	}
}

// StartAll starts every stopped server and waits until the cluster is ready.
func (c *NATSCluster) StartAll() {
	c.t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			s.Process.Start()
		}
	}
	c.WaitReady()
}

func getJSON(url string, v any) error {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
