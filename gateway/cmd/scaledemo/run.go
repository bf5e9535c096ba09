package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/testkit"
)

type demo struct {
	bin, dir string
	servers  []*server
	engines  []*testkit.FakeEngine
	pubs     []*proc
	gws      []*proc
	gwAddrs  []string
	js       jetstream.JetStream
	procs    []*proc
	sent     int
}

type server struct {
	p                               *proc
	client, route, leaf, http, data string
}

func intEnv(getenv func(string) string, name string, def int) (int, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: want a positive integer, got %q", name, v)
	}
	return n, nil
}

func run(ctx context.Context, getenv func(string) string) error {
	var nPubs, nGWs, nClients, nEvents, rate, seconds int
	var err error
	for _, v := range []struct {
		p    *int
		name string
		def  int
	}{{&nPubs, "DEMO_PUBLISHERS", 4}, {&nGWs, "DEMO_GATEWAYS", 2}, {&nClients, "DEMO_CLIENTS", 1000},
		{&nEvents, "DEMO_EVENTS", 20000}, {&rate, "DEMO_RATE", 100}, {&seconds, "DEMO_SECONDS", 20}} {
		if *v.p, err = intEnv(getenv, v.name, v.def); err != nil {
			return err
		}
	}
	if nGWs < 2 {
		return errors.New("DEMO_GATEWAYS: at least 2 (clients move to another gateway)")
	}
	steps := []int{}
	for _, s := range strings.Split(getenv("DEMO_STEPS"), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > nPubs {
			return fmt.Errorf("DEMO_STEPS: %q is not between 1 and DEMO_PUBLISHERS (%d)", s, nPubs)
		}
		steps = append(steps, n)
	}
	if len(steps) == 0 {
		for n := 1; n <= nPubs; n *= 2 {
			steps = append(steps, n)
		}
		if steps[len(steps)-1] != nPubs {
			steps = append(steps, nPubs)
		}
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "dockcast-scaledemo-")
	if err != nil {
		return err
	}
	d := &demo{bin: filepath.Join(root, "bin"), dir: dir}
	defer d.stop()
	fmt.Printf("scale demo: 3 nats-server, %d publishers (edge mode, stand-in engines), %d gateways, %d clients; logs in %s\n", nPubs, nGWs, nClients, dir)

	if err := d.startCluster(ctx); err != nil {
		return err
	}
	if err := d.startPublishers(ctx, nPubs); err != nil {
		return err
	}
	if err := d.startGateways(ctx, nGWs); err != nil {
		return err
	}
	if err := d.waitCentral(ctx, 0, time.Minute); err != nil { // the publishers' first-start events
		return err
	}

	fmt.Println("\n## Events/s into the central stream, by engines sending at once")
	fmt.Printf("(%d events per step, as fast as the engines' publishers take them; PUBLISHER_EMBEDDED_SYNC=always)\n\n", nEvents)
	fmt.Println("| engines | events | seconds | events/s |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, n := range steps {
		took, err := d.burst(ctx, n, nEvents)
		if err != nil {
			return err
		}
		fmt.Printf("| %d | %d | %.2f | %.0f |\n", n, nEvents, took.Seconds(), float64(nEvents)/took.Seconds())
	}
	if err := d.storage(ctx); err != nil {
		return err
	}
	if err := d.clients(ctx, nClients, rate, time.Duration(seconds)*time.Second); err != nil {
		return fmt.Errorf("%w (logs kept in %s)", err, dir)
	}
	d.stop()
	return os.RemoveAll(dir)
}

func (d *demo) stop() {
	for _, p := range slices.Backward(d.procs) {
		p.kill(syscall.SIGTERM)
	}
	for _, e := range d.engines {
		e.Close()
	}
	d.procs, d.engines = nil, nil
}

func (d *demo) start(name, bin string, args, env []string) (*proc, error) {
	p, err := startProc(d.dir, name, filepath.Join(d.bin, bin), args, env)
	if err != nil {
		return nil, err
	}
	d.procs = append(d.procs, p)
	return p, nil
}

// startCluster starts three servers on 127.0.0.11-13: domain hub, leaf
// listeners with no_advertise.
func (d *demo) startCluster(ctx context.Context) error {
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", 11+i)
		s := &server{data: filepath.Join(d.dir, fmt.Sprintf("hub-%d", i+1))}
		for _, a := range []*string{&s.client, &s.route, &s.leaf, &s.http} {
			addr, err := freeAddr(ip)
			if err != nil {
				return err
			}
			*a = addr
		}
		d.servers = append(d.servers, s)
	}
	var routes []string
	for _, s := range d.servers {
		routes = append(routes, "nats-route://"+s.route)
	}
	for i, s := range d.servers {
		conf := fmt.Sprintf("server_name: hub-%d\nlisten: %q\nhttp: %q\njetstream { store_dir: %q, domain: hub }\n"+
			"cluster { name: hub, listen: %q, routes: [%s] }\nleafnodes { listen: %q, no_advertise: true }\n",
			i+1, s.client, s.http, s.data, s.route, strings.Join(routes, ", "), s.leaf)
		path := filepath.Join(d.dir, fmt.Sprintf("hub-%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return err
		}
		p, err := d.start(fmt.Sprintf("hub-%d", i+1), "nats-server", []string{"-c", path}, nil)
		if err != nil {
			return err
		}
		s.p = p
	}
	for _, s := range d.servers {
		if err := waitOK(ctx, "http://"+s.http+"/healthz?js-enabled-only=true", time.Minute, s.p); err != nil {
			return err
		}
	}
	var urls []string
	for _, s := range d.servers {
		urls = append(urls, "nats://"+s.client)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	d.js, err = jetstream.New(nc)
	return err
}

func (d *demo) natsURLs() string {
	var urls []string
	for _, s := range d.servers {
		urls = append(urls, "nats://"+s.client)
	}
	return strings.Join(urls, ",")
}

// startPublishers starts n edge publishers on 127.0.0.21…, each on its own
// stand-in engine.
func (d *demo) startPublishers(ctx context.Context, n int) error {
	var hub []string
	for _, s := range d.servers {
		hub = append(hub, "nats-leaf://"+s.leaf)
	}
	var https []string
	for i := range n {
		ip := fmt.Sprintf("127.0.0.%d", 21+i)
		e := testkit.NewFakeEngine(testkit.FakeEngineOptions{Name: fmt.Sprintf("engine-%d", i+1), Memory: 100000, Block: true})
		d.engines = append(d.engines, e)
		natsAddr, err := freeAddr(ip)
		if err != nil {
			return err
		}
		httpAddr, err := freeAddr(ip)
		if err != nil {
			return err
		}
		p, err := d.start(fmt.Sprintf("publisher-%d", i+1), "publisher", nil, []string{
			"DOCKER_HOST=" + e.Host, "PUBLISHER_HUB=" + strings.Join(hub, ","), fmt.Sprintf("PUBLISHER_NODE=node-%d", i+1),
			"PUBLISHER_DATA_DIR=" + filepath.Join(d.dir, fmt.Sprintf("publisher-%d", i+1)),
			"PUBLISHER_EMBEDDED_NATS=" + natsAddr, "PUBLISHER_HTTP_ADDR=" + httpAddr,
			"PUBLISHER_STREAM_REPLICAS=3", "LOG_LEVEL=warn",
		})
		if err != nil {
			return err
		}
		d.pubs = append(d.pubs, p)
		https = append(https, httpAddr)
	}
	for i, a := range https {
		if err := waitOK(ctx, "http://"+a+"/readyz", 2*time.Minute, d.pubs[i]); err != nil {
			return err
		}
	}
	return nil
}

// startGateways starts m gateways on 127.0.0.41…, reading the central
// cluster.
func (d *demo) startGateways(ctx context.Context, m int) error {
	for j := range m {
		addr, err := freeAddr(fmt.Sprintf("127.0.0.%d", 41+j))
		if err != nil {
			return err
		}
		p, err := d.start(fmt.Sprintf("gateway-%d", j+1), "gateway", nil, []string{
			"NATS_URL=" + d.natsURLs(), "GATEWAY_ADDR=" + addr, "GATEWAY_MAX_CLIENTS=100000",
			"GATEWAY_MAX_CLIENTS_PER_IP=100000", "LOG_LEVEL=warn",
		})
		if err != nil {
			return err
		}
		d.gws = append(d.gws, p)
		d.gwAddrs = append(d.gwAddrs, addr)
	}
	for j, a := range d.gwAddrs {
		if err := waitOK(ctx, "http://"+a+"/readyz", time.Minute, d.gws[j]); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := d.js.Stream(ictx, "DOCKER_EVENTS")
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

// waitCentral waits until every publisher's source has nothing left to
// copy and the central stream holds at least want messages.
func (d *demo) waitCentral(ctx context.Context, want uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		si, err := d.info(ctx)
		if err == nil && si.State.Msgs >= want && len(si.Sources) == len(d.pubs) {
			idle := true
			for _, src := range si.Sources {
				idle = idle && src.Lag == 0 && src.Active >= 0
			}
			if idle {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("it holds %d messages, want %d; %d sources", si.State.Msgs, want, len(si.Sources))
			}
			return fmt.Errorf("the central stream has not caught up after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *demo) gen(i int) events.Message {
	d.sent++
	actions := []string{"create", "start", "die", "destroy"}
	id := fmt.Sprintf("%064x", d.sent/4+1)
	return testkit.Container(actions[i%4], id, fmt.Sprintf("svc-%d", d.sent/4), map[string]string{
		"image": "registry.example.com/team/service:1.4.2", "com.docker.compose.project": "shop",
		"com.docker.compose.service": "svc", "exitCode": "0",
	})
}

// burst emits total events spread over the first n engines at once and
// returns the time until the central stream holds them all.
func (d *demo) burst(ctx context.Context, n, total int) (time.Duration, error) {
	si, err := d.info(ctx)
	if err != nil {
		return 0, err
	}
	base := si.State.Msgs
	per := total / n
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Go(func() {
			for k := range per {
				mu.Lock()
				m := d.gen(k)
				mu.Unlock()
				d.engines[i].Emit(m)
			}
		})
	}
	wg.Wait()
	if err := d.waitCentral(ctx, base+uint64(per*n), 5*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// storage reports the central stream's bytes per million events.
func (d *demo) storage(ctx context.Context) error {
	si, err := d.info(ctx)
	if err != nil {
		return err
	}
	var disk int64
	for _, s := range d.servers {
		disk += dirSize(s.data)
	}
	per := float64(si.State.Bytes) / float64(si.State.Msgs)
	fmt.Printf("\n## Central storage\n\n%d messages, %.0f bytes each in the stream: %.0f MiB per million events per copy (R3: three copies); "+
		"the three servers' store directories hold %.0f MiB per million events each (stream, Raft log, status bucket)\n",
		si.State.Msgs, per, per*1e6/(1<<20), float64(disk)/3/float64(si.State.Msgs)*1e6/(1<<20))
	return nil
}
