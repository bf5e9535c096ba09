package embedded_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/embedded"
	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/testkit"
)

// BenchmarkSourcing measures what sourcing many leaf streams into one
// central stream costs the central cluster (figures: docs/scaling.md):
//
//   - the central side is a 3-node bin/nats-server cluster (domain hub, R3
//     central stream); its processes' CPU (/proc/<pid>/stat) and RSS are
//     what is measured, so the leafs and the load generator, which run in
//     this process, do not count;
//   - the edge side is L leaf servers made by embedded.StartEdge (one
//     JetStream domain each, as in production), each holding K local
//     streams, all sourced: S = L*K sources. One leaf per engine is the
//     production shape; several streams per leaf isolate the per-source
//     cost from the per-leaf-connection cost at a count this machine holds;
//   - phases: idle with the stream but no sources (baseline), idle with S
//     sources (heartbeats only), a steady load, a cut of every leaf link
//     with a backlog stored locally, then catch-up after the restore;
//     storage per million events from the central stream's state and the
//     servers' store directories.
//
// Sizes: BENCH_SOURCES (comma list, default 50,200,1000; BENCH_QUICK=1:
// 50,200 with shorter phases), BENCH_LEAFS (default 10).
// Run: cd publisher && go test -run '^$' -bench Sourcing -benchtime 1x -timeout 60m ./embedded/
func BenchmarkSourcing(b *testing.B) {
	quick := os.Getenv("BENCH_QUICK") != ""
	sizes := []int{50, 200, 1000}
	if quick {
		sizes = []int{50, 200}
	}
	if v := os.Getenv("BENCH_SOURCES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				b.Fatalf("BENCH_SOURCES: %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	leafs := 10
	if v := os.Getenv("BENCH_LEAFS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_LEAFS: %q", v)
		}
		leafs = n
	}
	ph := sourcingPhases{idle: 20 * time.Second, load: 20 * time.Second, rate: 1000, backlogPerSource: 200, backlogMin: 50000}
	if quick {
		ph = sourcingPhases{idle: 5 * time.Second, load: 5 * time.Second, rate: 500, backlogPerSource: 50, backlogMin: 10000}
	}
	for _, s := range sizes {
		b.Run(fmt.Sprintf("sources=%d", s), func(b *testing.B) {
			for range b.N {
				runSourcing(b, min(leafs, s), s, ph)
			}
		})
	}
}

type sourcingPhases struct {
	idle, load       time.Duration
	rate             int // events/s into the local streams during the load phase
	backlogPerSource int // events stored per local stream while the links are cut
	backlogMin       int // and at least this many in all
}

// procStat is a process's CPU time (user+system) and resident memory.
func procStat(b *testing.B, pid int) (cpu time.Duration, rss int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	return cpu, rss
}

// clusterUsage is the central cluster's CPU (all servers) over d and its
// total RSS at the end.
func clusterUsage(b *testing.B, c *testkit.NATSCluster, d time.Duration) (cpuPerSec float64, rss int64) {
	var before time.Duration
	for _, s := range c.Servers {
		cpu, _ := procStat(b, s.Pid())
		before += cpu
	}
	start := time.Now()
	time.Sleep(d) // the phase's length: CPU is sampled over it
	var after time.Duration
	for _, s := range c.Servers {
		cpu, r := procStat(b, s.Pid())
		after += cpu
		rss += r
	}
	return float64(after-before) / float64(time.Since(start)), rss
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// sampleEvent is a typical container event (540 bytes of JSON).
const sampleEvent = `{"v":1,"id":"%s","node":"%s","type":"container","action":"start","action_detail":"","actor":{"id":"4f2c9a7c1d0e6b3a8f5e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a","attributes":{"com.docker.compose.project":"shop","com.docker.compose.service":"api","com.docker.compose.version":"2.29.1","image":"registry.example.com/shop/api:1.42.0","name":"shop-api-1","org.opencontainers.image.revision":"9f1c2e7"}},"scope":"local","time":"2026-11-25T19:04:25.217300886Z","time_nano":1764097465217300886}`

func runSourcing(b *testing.B, leafs, sources int, ph sourcingPhases) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	// call bounds one API request: one can go unanswered (see
	// natsutil.DefaultAPITimeout), and the benchmark should fail, not hang.
	call := func(f func(context.Context) error) {
		b.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := f(c); err != nil {
			b.Fatal(err)
		}
	}
	c := testkit.StartNATSCluster(b, testkit.ClusterOptions{Name: "hubc", Domain: "hub", LeafNodes: true})
	var proxies []*testkit.TCPProxy
	var hub []string
	for _, s := range c.Servers {
		p := testkit.StartTCPProxy(b, fmt.Sprintf("127.0.0.1:%d", s.LeafPort))
		proxies = append(proxies, p)
		hub = append(hub, "nats-leaf://"+p.Addr)
	}
	_, hjs := testkit.Connect(b, c.URLs())
	cs, err := natsutil.EnsureCentralStream(ctx, hjs, natsutil.CentralStreamConfig(central, time.Hour, 2*time.Minute, 3), nil)
	if err != nil {
		b.Fatal(err)
	}

	// The edge side: leafs × streams, each stream on its own subjects.
	type local struct {
		js      jetstream.JetStream
		node    string // the leaf's domain
		name    string
		subject string
	}
	var locals []local
	for l := range leafs {
		node := fmt.Sprintf("e%03d", l)
		s, err := embedded.StartEdge(embedded.Options{Host: "127.0.0.1", StoreDir: b.TempDir()},
			embedded.Edge{Node: node, Hub: hub, Sync: time.Minute, ReconnectInterval: 250 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Shutdown)
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		per := sources / leafs
		if l < sources%leafs {
			per++
		}
		for k := range per {
			name := fmt.Sprintf("%s_%s-%04d", central, node, k)
			subj := fmt.Sprintf("docker.events.%s-%04d.container.start", node, k)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			locals = append(locals, local{js: js, node: node, name: name, subject: subj})
		}
	}
	baseCPU, baseRSS := clusterUsage(b, c, ph.idle)

	// All sources in one update (adding them one by one through
	// Sources.Add is measured separately below).
	began := time.Now()
	cfg := cs.CachedInfo().Config
	for _, l := range locals {
		src := natsutil.EdgeSource(l.node, l.name)
		cfg.Sources = append(cfg.Sources, &src)
	}
	call(func(c context.Context) error { _, err := hjs.UpdateStream(c, cfg); return err })
	src := natsutil.Sources{JS: hjs, Stream: central}
	waitSources := func(what string, timeout time.Duration, ok func(natsutil.SourceLag) bool) {
		testkit.Eventually(b, timeout, func() error {
			lags, err := src.Lags(ctx)
			if err != nil {
				return err
			}
			bad := 0
			for _, l := range lags {
				if !ok(l) {
					bad++
				}
			}
			if bad > 0 || len(lags) != len(locals) {
				return fmt.Errorf("%s: %d of %d sources not yet", what, bad, len(lags))
			}
			return nil
		})
	}
	waitSources("established", 10*time.Minute, func(l natsutil.SourceLag) bool { return l.Active >= 0 && l.Active < 5*time.Second && l.Error == "" })
	established := time.Since(began)
	idleCPU, idleRSS := clusterUsage(b, c, ph.idle)

	// Steady load: rate events/s round-robin over the local streams.
	var published, direct int // events published into the local streams, and straight into the central stream
	var wg sync.WaitGroup
	publish := func(n int, perSecond int) {
		var tick <-chan time.Time
		if perSecond > 0 {
			t := time.NewTicker(time.Second / time.Duration(perSecond))
			defer t.Stop()
			tick = t.C
		}
		var futures []jetstream.PubAckFuture
		settle := func() {
			testkit.AwaitAcks(ctx, b, futures)
			futures = futures[:0]
		}
		for i := range n {
			if len(futures) == 256 {
				settle()
			}
			if tick != nil {
				<-tick
			}
			l := locals[(published+i)%len(locals)]
			id := fmt.Sprintf("%s-%d", l.name, published+i)
			m := nats.NewMsg(l.subject)
			m.Data = fmt.Appendf(nil, sampleEvent, id, l.node)
			m.Header.Set(jetstream.MsgIDHeader, id)
			f, err := l.js.PublishMsgAsync(m)
			if err != nil {
				b.Fatal(err)
			}
			futures = append(futures, f)
		}
		settle()
		published += n
	}
	waitCentral := func(timeout time.Duration) time.Duration { return waitCentralHolds(b, hjs, direct+published, timeout) }
	var loadCPU float64
	var loadRSS int64
	wg.Go(func() { loadCPU, loadRSS = clusterUsage(b, c, ph.load) })
	publish(ph.rate*int(ph.load/time.Second), ph.rate)
	wg.Wait()
	loadLag := waitCentral(2 * time.Minute)

	// The same load published straight into the central stream (a
	// direct-mode publisher), for comparison with sourcing.
	var directCPU float64
	wg.Go(func() { directCPU, _ = clusterUsage(b, c, ph.load) })
	pace := time.NewTicker(time.Second / time.Duration(ph.rate))
	var futures []jetstream.PubAckFuture
	for i := range ph.rate * int(ph.load/time.Second) {
		<-pace.C
		m := nats.NewMsg("docker.events.direct.container.start")
		m.Data = fmt.Appendf(nil, sampleEvent, fmt.Sprint("direct-", i), "direct")
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("direct-", i))
		f, err := hjs.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	pace.Stop()
	testkit.AwaitAcks(context.Background(), b, futures)
	wg.Wait()
	direct += len(futures)

	// Catch-up: every link cut, a backlog stored locally, links restored.
	for _, p := range proxies {
		p.Cut()
	}
	before := published
	perSource := max(ph.backlogPerSource, ph.backlogMin/len(locals))
	publish(perSource*len(locals), 0)
	backlog := published - before
	held, err := centralCount(hjs)
	if err != nil {
		b.Fatal(err)
	}
	restored := time.Now()
	for _, p := range proxies {
		p.Restore()
	}
	var moving time.Time // when the first message of the backlog arrived
	testkit.Eventually(b, 20*time.Minute, func() error {
		n, err := centralCount(hjs)
		if err != nil {
			return err
		}
		if n > held && moving.IsZero() {
			moving = time.Now()
		}
		if n < uint64(direct+published) {
			return fmt.Errorf("central holds %d of %d", n, direct+published)
		}
		return nil
	})
	catchUp := time.Since(restored) // reconnects included
	flowing := time.Since(moving)   // copying only

	var info *jetstream.StreamInfo
	call(func(c context.Context) (err error) { info, err = cs.Info(c); return err })
	infoJSON, err := json.Marshal(info) // what every stream info and every source update carries
	if err != nil {
		b.Fatal(err)
	}
	var disk int64
	for _, s := range c.Servers {
		disk += dirSize(s.Dir)
	}
	perMillion := func(total int64) float64 { return float64(total) / float64(info.State.Msgs) * 1e6 / (1 << 20) }

	// One more source through the converging Add, at this size.
	extra, err := embedded.StartEdge(embedded.Options{Host: "127.0.0.1", StoreDir: b.TempDir()}, embedded.Edge{Node: "extra", Hub: hub})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(extra.Shutdown)
	waitLeaf(b, extra)
	infoStart := time.Now()
	call(func(c context.Context) (err error) { cs, err = hjs.Stream(c, central); return err })
	infoTook := time.Since(infoStart)
	cfg = cs.CachedInfo().Config
	one := natsutil.EdgeSource("extra", central+"_extra1")
	cfg.Sources = append(cfg.Sources, &one)
	configJSON, _ := json.Marshal(cfg) // the update request
	// The update adding it, and a publish straight into the central stream
	// made while it runs (adding a source makes the server scan the whole
	// stream first: nats-server issue #6992).
	updateStart := time.Now()
	var stall time.Duration
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // let the update start
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		t0 := time.Now()
		if _, err := hjs.Publish(c, "docker.events.direct.container.stop", []byte("{}")); err != nil {
			b.Error(err)
		}
		stall = time.Since(t0)
	})
	upd, updCancel := context.WithTimeout(ctx, 5*time.Minute)
	if _, err := hjs.UpdateStream(upd, cfg); err != nil {
		b.Fatal(err)
	}
	updCancel()
	updateTook := time.Since(updateStart)
	wg.Wait()
	addStart := time.Now()
	if err := (natsutil.Sources{JS: hjs, Stream: central, Settle: time.Millisecond}).Add(ctx, natsutil.EdgeSource("extra", central+"_extra2")); err != nil {
		b.Fatal(err)
	}
	addTook := time.Since(addStart)

	each := func(v, base float64) float64 { return (v - base) / float64(len(locals)) }
	b.ReportMetric(each(idleCPU, baseCPU)*1000, "idle-cpu-ms/s/source")
	b.ReportMetric(each(float64(idleRSS), float64(baseRSS))/1024, "idle-rss-KiB/source")
	b.ReportMetric((loadCPU-idleCPU)*1000/float64(ph.rate)*1000, "load-cpu-ms/kevents")
	b.ReportMetric((directCPU-idleCPU)*1000/float64(ph.rate)*1000, "direct-cpu-ms/kevents")
	b.ReportMetric(float64(len(configJSON))/float64(len(cfg.Sources)), "config-bytes/source")
	b.ReportMetric(float64(backlog)/flowing.Seconds(), "catchup-events/s")
	b.ReportMetric(moving.Sub(restored).Seconds(), "catchup-start-s")
	b.ReportMetric(perMillion(int64(info.State.Bytes)), "stream-MiB/Mevents")
	b.ReportMetric(perMillion(disk/3), "disk-MiB/Mevents/server")
	b.ReportMetric(float64(len(infoJSON))/float64(len(locals)), "info-bytes/source")
	b.ReportMetric(updateTook.Seconds(), "add-source-s")
	b.ReportMetric(stall.Seconds(), "add-source-publish-stall-s")
	b.Logf("sources=%d leafs=%d | baseline: cluster CPU %.1f%% RSS %.0f MiB | idle with sources: CPU %.1f%% RSS %.0f MiB | established in %v | load %d ev/s: direct into the central stream CPU %.1f%%; sourced: CPU %.1f%% RSS %.0f MiB, central %v behind at the end | backlog %d events (%d/source): caught up %v after the restore, first copied after %v, then %.0f ev/s | central stream %d msgs %.1f MiB (%.0f B/msg), disk %.1f MiB/server | stream info %d KiB (read in %v), config %d KiB (one UpdateStream adding a source: %v, a publish into the central stream meanwhile: %v) | Sources.Add of one more: %v",
		len(locals), leafs, baseCPU*100, float64(baseRSS)/(1<<20), idleCPU*100, float64(idleRSS)/(1<<20), established.Round(time.Millisecond),
		ph.rate, directCPU*100, loadCPU*100, float64(loadRSS)/(1<<20), loadLag.Round(time.Millisecond),
		backlog, perSource, catchUp.Round(time.Millisecond), moving.Sub(restored).Round(time.Millisecond), float64(backlog)/flowing.Seconds(),
		info.State.Msgs, float64(info.State.Bytes)/(1<<20), float64(info.State.Bytes)/float64(info.State.Msgs), float64(disk)/3/(1<<20),
		len(infoJSON)>>10, infoTook.Round(time.Millisecond), len(configJSON)>>10, updateTook.Round(time.Millisecond), stall.Round(time.Millisecond), addTook.Round(time.Millisecond))
}
