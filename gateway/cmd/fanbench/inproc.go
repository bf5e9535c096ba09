package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// breakdown measures an idle client's memory in the in-process gateway,
// recording every allocation: the heap by component and the goroutine
// stacks, per client.
func (o *orchestrator) breakdown(ctx context.Context) *breakdownResult {
	n := o.sc.IdleClients
	r := &breakdownResult{Clients: n}
	o.logf("dockcast: breakdown: %d idle clients, in-process gateway, every allocation recorded", n)
	g := &gatewayPeer{o: o, inproc: true, memRate: 1}
	if err := g.start(ctx); err != nil {
		r.Err = "start: " + err.Error()
		g.stop()
		return r
	}
	defer g.stop()
	settle(ctx, time.Second)
	if err := getJSON(ctx, g.debugBase()+"/debug/breakdown", &r.Before); err != nil {
		r.Err = err.Error()
		return r
	}
	rss0, _ := rssBytes(g.pid())
	cr, ready, err := o.startClients(ctx, "dockcast-breakdown", g.clients(n, 0))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer cr.stop()
	if ready.Ready != n {
		r.Err = fmt.Sprintf("%d of %d clients ready: %s", ready.Ready, n, ready.FirstError)
		return r
	}
	settle(ctx, 3*time.Second)
	if err := getJSON(ctx, g.debugBase()+"/debug/breakdown", &r.After); err != nil {
		r.Err = err.Error()
		return r
	}
	rss1, _ := rssBytes(g.pid())
	r.RSSDelta = rss1 - rss0
	if o.profileDir != "" {
		// The heap with every allocation recorded: inuse_space is the
		// breakdown's source, alloc_space what the connections allocated.
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			r.Err = err.Error()
			return r
		}
		if err := o.saveURL(ctx, g.debugBase()+"/debug/pprof/heap", filepath.Join(o.profileDir, "breakdown-heap.prof")); err != nil {
			r.Err = err.Error()
		}
	}
	return r
}

// profile runs the flat-out and latency loads against the in-process
// gateway and saves CPU and allocation profiles in BENCH_PROFILE.
func (o *orchestrator) profile(ctx context.Context) *profileResult {
	r := &profileResult{Dir: o.profileDir}
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		r.Err = err.Error()
		return r
	}
	loads := []struct {
		name            string
		clients, events int
		rate            int
		batch           bool
	}{
		{"flat", o.sc.FlatClients, o.sc.FlatEvents, 0, false},
		{"flat-batch", o.sc.FlatClients, o.sc.FlatEvents, 0, true},
		{"latency", o.sc.LatClients, o.sc.LatRate * int(o.sc.LatDuration/time.Second), o.sc.LatRate, false},
	}
	for _, l := range loads {
		o.logf("dockcast: profile: %s", l.name)
		g := &gatewayPeer{o: o, inproc: true, batch: l.batch}
		if err := g.start(ctx); err != nil {
			r.Err = "start: " + err.Error()
			g.stop()
			return r
		}
		var hookErr error
		hook := func(start bool) {
			base := filepath.Join(o.profileDir, l.name)
			if start {
				hookErr = o.saveURL(ctx, g.debugBase()+"/debug/pprof/allocs", base+"-allocs-before.prof")
				if hookErr == nil {
					hookErr = o.call(ctx, g.debugBase()+"/debug/cpu/start?path="+url.QueryEscape(base+"-cpu.prof"))
				}
				return
			}
			if err := o.call(ctx, g.debugBase()+"/debug/cpu/stop"); err != nil && hookErr == nil {
				hookErr = err
			}
			if err := o.saveURL(ctx, g.debugBase()+"/debug/pprof/allocs", base+"-allocs-after.prof"); err != nil && hookErr == nil {
				hookErr = err
			}
		}
		f, err := o.flow(ctx, g, l.clients, l.events, l.rate, hook)
		g.stop()
		if err == nil {
			err = hookErr
		}
		if err != nil {
			r.Err = l.name + ": " + err.Error()
			return r
		}
		r.Loads = append(r.Loads, profiledLoad{Name: l.name, Flow: f})
	}
	r.Binary = o.self
	return r
}

func (o *orchestrator) call(ctx context.Context, u string) error {
	code, body, err := httpGet(ctx, u)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", u, code, body)
	}
	return nil
}

func (o *orchestrator) saveURL(ctx context.Context, u, path string) error {
	code, body, err := httpGet(ctx, u)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: %d", u, code)
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// trace runs the latency load against the in-process gateway (default
// mode) and, when it is among BENCH_PEERS, Centrifugo, each with an
// execution trace (Go's /debug/pprof/trace) from the first publish to the
// last receipt; the gateway also writes the collector's lines
// (GODEBUG=gctrace=1) to its log. Both go to BENCH_TRACE.
func (o *orchestrator) trace(ctx context.Context) *profileResult {
	r := &profileResult{Dir: o.traceDir, Binary: o.self}
	if err := os.MkdirAll(o.traceDir, 0o755); err != nil {
		r.Err = err.Error()
		return r
	}
	type traced struct {
		name  string
		p     peer
		debug func() string // the base URL of its /debug/pprof
	}
	g := &gatewayPeer{o: o, inproc: true, env: []string{"GODEBUG=gctrace=1"}}
	loads := []traced{{"latency", g, g.debugBase}}
	if slices.Contains(o.peers, peerCentrifugo) {
		c := &centrifugoPeer{o: o, debug: true}
		loads = append(loads, traced{"latency-centrifugo", c, c.base})
	}
	for _, l := range loads {
		o.logf("%s: trace: %s", l.p.name(), l.name)
		if err := l.p.start(ctx); err != nil {
			r.Err = l.name + ": start: " + err.Error()
			l.p.stop()
			return r
		}
		base := filepath.Join(o.traceDir, l.name)
		// The trace covers the publishing and a second after it.
		secs := int(o.sc.LatDuration/time.Second) + 1
		done := make(chan error, 1)
		hook := func(start bool) {
			if start {
				go func() {
					done <- o.saveURL(ctx, fmt.Sprintf("%s/debug/pprof/trace?seconds=%d", l.debug(), secs), base+".trace")
				}()
			}
		}
		f, err := o.flow(ctx, l.p, o.sc.LatClients, o.sc.LatRate*int(o.sc.LatDuration/time.Second), o.sc.LatRate, hook)
		if terr := <-done; err == nil {
			err = terr
		}
		l.p.stop()
		if gw, ok := l.p.(*gatewayPeer); ok && err == nil {
			err = copyFile(gw.proc.Log, base+"-gateway.log")
		}
		if err != nil {
			r.Err = l.name + ": " + err.Error()
			return r
		}
		r.Loads = append(r.Loads, profiledLoad{Name: l.name, Flow: f})
	}
	return r
}

// copyFile copies the file at from to to.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
