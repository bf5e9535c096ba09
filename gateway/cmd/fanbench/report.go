package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Quick             bool
	Scale             scale
	Started, Finished time.Time
	LoadStart         string // /proc/loadavg when the run began
	PayloadBytes      int
	Peers             []*peerResult
	Storm             *stormResult
	Breakdown         *breakdownResult
	Profiles          *profileResult
	Trace             *profileResult
	Publisher         *publisherResult
}

type peerResult struct {
	Name, Title string
	Unsupported string
	Idle        *idleResult
	Flat        *flowResult
	Latency     *flowResult
	Held        *heldResult
	Errors      map[string]string // scenario -> why it has no figure
}

type idleResult struct {
	Clients               int
	RSSBefore, RSSAfter   int64
	ClientRSS             int64
	HeapBefore, HeapAfter float64
	Goroutines            float64
	HasGo                 bool
	ConnectTook           time.Duration
	Threads               int
}

func (r *idleResult) perClient() float64 {
	return float64(r.RSSAfter-r.RSSBefore) / float64(r.Clients)
}

type flowResult struct {
	Clients, Events, Rate int
	Result                resultMsg
	Published             time.Duration // first publish to last ack
	Took                  time.Duration // first publish to last receipt
	Delivered             float64       // events received per second, all clients
	Complete              bool
	CPU                   cpuUse
	// The gateway's own view (its metrics): mean time from the stream
	// storing a message to the live feed offering it, and mean fan-out
	// of one message to every client.
	FeedDelay, Fanout time.Duration
}

type heldResult struct {
	Clients, Ready               int
	ConnectTook, Took            time.Duration
	RSSBefore, RSSIdle, RSSAfter int64
	Heap, Goroutines             float64
	HasGo                        bool
	Burst                        resultMsg
	Delivered                    float64
	Complete                     bool
	CPU                          cpuUse
}

type stormResult struct {
	Clients, Back, Dial, Ready int
	Took                       time.Duration
	ReplayedMin, ReplayedMax   int
	Disorder                   int
	APICalls, APIErrors        int64
	CPU                        cpuUse // the gateway and nats-server (clients not counted)
	Err                        string
}

type breakdownResult struct {
	Clients       int
	Before, After heapBreakdown
	RSSDelta      int64
	Err           string
}

type profileResult struct {
	Dir, Binary, Err string
	Loads            []profiledLoad
}

// section writes the loads of p (none when p is nil) under title, one
// line each.
func (p *profileResult) section(w func(string, ...any), title string, line func(profiledLoad) string) {
	if p == nil {
		return
	}
	w("## %s\n\n", title)
	if p.Err != "" {
		w("Error: %s\n\n", p.Err)
	}
	for _, l := range p.Loads {
		w("- %s: %s\n", l.Name, line(l))
	}
	w("\n")
}

type profiledLoad struct {
	Name string
	Flow *flowResult
}

type publisherResult struct {
	Events                      int
	Raw, Pipeline, Emitted      time.Duration
	RawPayload, PipelinePayload int
	Containers                  int // the pipeline's events are about this many containers
	// CPU seconds: raw (Server: this process, the publishing client;
	// NATS) and pipeline (Server: the publisher; NATS; Clients: this
	// process, the stand-in engine and the harness).
	RawCPU, PipeCPU  cpuUse
	Dropped, Streams int
	Err              string
}

func (r *report) peer(name string) *peerResult {
	for _, p := range r.Peers {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// num formats n with thousands separators.
func num(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
func ms(ns int64) string   { return fmt.Sprintf("%.1f ms", float64(ns)/1e6) }
func secs(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// cell is a peer's figure for a scenario, or why there is none.
func (p *peerResult) cell(sc string, ok bool, f func() string) string {
	switch {
	case p.Unsupported != "" && sc == scFlat:
		return p.Unsupported
	case p.Unsupported != "":
		return "(not supported)"
	case p.Errors[sc] != "":
		return "error: " + truncate(p.Errors[sc], 160)
	case !ok:
		return "—"
	}
	return f()
}

// cpuNote says how much CPU the server, nats-server and the clients used
// for n messages delivered.
func cpuNote(u cpuUse, n int64) string {
	if n <= 0 {
		return ""
	}
	s := fmt.Sprintf("CPU: server %.1f s (%.2f µs/msg)", u.Server, u.Server*1e6/float64(n))
	if u.HasNATS {
		s += fmt.Sprintf(", nats-server %.1f s", u.NATS)
	}
	return s + fmt.Sprintf(", clients %.1f s (%.2f µs/msg)", u.Clients, u.Clients*1e6/float64(n))
}

func flowProblems(f *flowResult) string {
	r := f.Result
	resumed := ""
	if r.Resumes > 0 {
		resumed = fmt.Sprintf("; %d slow_consumer disconnects, each resumed with from_seq", r.Resumes)
	}
	if f.Complete {
		return resumed
	}
	var errs []string
	for k, v := range r.Errors {
		errs = append(errs, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(errs)
	return fmt.Sprintf("%s **incomplete**: %d of %d clients got all %d (min %d, max %d), %d out of order, errors: %s",
		resumed, r.Complete, f.Clients, f.Events, r.Min, r.Max, r.Disorder, strings.Join(errs, ", "))
}

// markdown renders the report; the profiles section (local paths) only
// with withProfiles.
func (r *report) markdown(withProfiles bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	sc := r.Scale
	w("# Fan-out comparison: dockcast, NATS WebSocket, Centrifugo\n\n")
	w("Written by `fanbench` (`make bench`%s) on %s, %d CPUs, %s; load average (1, 5, 15 min) at the start %s, at the end %s; run took %s.\n",
		map[bool]string{true: " with BENCH_QUICK=1", false: ""}[r.Quick], r.Started.UTC().Format("2006-01-02 15:04 UTC"),
		runtime.NumCPU(), runtime.Version(), r.LoadStart, loadAvg(), r.Finished.Sub(r.Started).Round(time.Second))
	w("One bin/nats-server (JetStream, file store) holds the stream `DOCKER_EVENTS`; every peer reads it: dockcast's bin/gateway, ")
	w("nats-server's own WebSocket listener (core subscriptions on `docker.events.*.container.>`, the subjects of the gateway's `filter=type=container`), ")
	w("and Centrifugo v6.9.1 (its `nats_jetstream` consumer in publication data mode, clients subscribed to one channel with its JSON protocol). ")
	w("The events are a docker-compose container's `start` event (%d bytes of payload), published into JetStream with acknowledged async publishes; ", r.PayloadBytes)
	w("the clients run in one separate process (gorilla/websocket), so that server, clients and NATS share the machine's cores. ")
	w("Every client must receive every event, in order: counts and order are checked, and a run that misses is marked incomplete. ")
	w("Each scenario starts a fresh server process (nats-server stays up: it holds the stream).\n\n")

	cols := r.Peers
	tableHead(w, []string{"measure"}, cols, "%s")
	row := func(title string, f func(p *peerResult) string) {
		w("| %s |", title)
		for _, p := range cols {
			w(" %s |", f(p))
		}
		w("\n")
	}
	row(fmt.Sprintf("flat out: %d clients × %s events, messages/s delivered", sc.FlatClients, num(float64(sc.FlatEvents))), func(p *peerResult) string {
		return p.cell(scFlat, p.Flat != nil, func() string {
			return fmt.Sprintf("**%s** (%s; publishing took %s; %s)%s", num(p.Flat.Delivered), secs(p.Flat.Took), secs(p.Flat.Published),
				cpuNote(p.Flat.CPU, p.Flat.Result.Total), flowProblems(p.Flat))
		})
	})
	row(fmt.Sprintf("%s events/s to %d clients for %v: publish → receipt p50 / p99 / max", num(float64(sc.LatRate)), sc.LatClients, sc.LatDuration), func(p *peerResult) string {
		return p.cell(scLatency, p.Latency != nil, func() string {
			l := p.Latency.Result
			gw := ""
			if p.Latency.FeedDelay > 0 {
				gw = fmt.Sprintf("; the gateway's metrics: stream to fan-out %s, fan-out to every client %s, means", ms(p.Latency.FeedDelay.Nanoseconds()), ms(p.Latency.Fanout.Nanoseconds()))
			}
			return fmt.Sprintf("%s / **%s** / %s (%s%s)%s", ms(l.P50), ms(l.P99), ms(l.PMax), cpuNote(p.Latency.CPU, l.Total), gw, flowProblems(p.Latency))
		})
	})
	row(fmt.Sprintf("memory per idle client: server RSS growth / %s clients", num(float64(sc.IdleClients))), func(p *peerResult) string {
		return p.cell(scIdle, p.Idle != nil, func() string {
			s := fmt.Sprintf("**%s** (%s → %s", kib(p.Idle.perClient()), mib(float64(p.Idle.RSSBefore)), mib(float64(p.Idle.RSSAfter)))
			if p.Idle.HasGo {
				s += fmt.Sprintf("; Go heap %s → %s, %s goroutines", mib(p.Idle.HeapBefore), mib(p.Idle.HeapAfter), num(p.Idle.Goroutines))
			}
			return s + ")"
		})
	})
	row(fmt.Sprintf("%s live clients held: connect time, RSS growth per client", num(float64(sc.HeldClients))), func(p *peerResult) string {
		return p.cell(scHeld, p.Held != nil, func() string {
			h := p.Held
			s := fmt.Sprintf("%d held, %s; %s per client (%s → %s)", h.Ready, secs(h.ConnectTook),
				kib(float64(h.RSSIdle-h.RSSBefore)/float64(h.Clients)), mib(float64(h.RSSBefore)), mib(float64(h.RSSIdle)))
			if h.HasGo {
				s += fmt.Sprintf("; Go heap %s, %s goroutines", mib(h.Heap), num(h.Goroutines))
			}
			return s
		})
	})
	row(fmt.Sprintf("burst of %d events to the %s held clients: messages/s delivered, p50 / p99", sc.HeldEvents, num(float64(sc.HeldClients))), func(p *peerResult) string {
		return p.cell(scHeld, p.Held != nil, func() string {
			h := p.Held
			s := fmt.Sprintf("**%s** (%s; %s / %s; %s)", num(h.Delivered), secs(h.Took), ms(h.Burst.P50), ms(h.Burst.P99), cpuNote(h.CPU, h.Burst.Total))
			return s + flowProblems(&flowResult{Clients: h.Clients, Events: sc.HeldEvents, Result: h.Burst, Complete: h.Complete})
		})
	})
	w("\n")
	r.ratios(w)
	r.targets(w)
	r.stormSection(w)
	r.breakdownSection(w)
	r.publisherSection(w)
	if withProfiles {
		r.Profiles.section(w, "Profiles", func(l profiledLoad) string {
			return fmt.Sprintf("%s msgs/s delivered, p99 %s (%s)%s; `go tool pprof -top %s %s/%s-cpu.prof`; allocations: `go tool pprof -top -sample_index=alloc_space -diff_base %[6]s/%[7]s-allocs-before.prof %[5]s %[6]s/%[7]s-allocs-after.prof`",
				num(l.Flow.Delivered), ms(l.Flow.Result.P99), cpuNote(l.Flow.CPU, l.Flow.Result.Total), flowProblems(l.Flow), r.Profiles.Binary, r.Profiles.Dir, l.Name)
		})
		r.Trace.section(w, "Execution trace", func(l profiledLoad) string {
			return fmt.Sprintf("p50 / p99 / max %s / %s / %s (%s)%s; `go tool trace %s/%s.trace`",
				ms(l.Flow.Result.P50), ms(l.Flow.Result.P99), ms(l.Flow.Result.PMax), cpuNote(l.Flow.CPU, l.Flow.Result.Total), flowProblems(l.Flow), r.Trace.Dir, l.Name)
		})
	}
	return b.String()
}

// ratios compares dockcast with each peer: throughput as dockcast ÷ peer
// (above 1 is better), latency and memory as dockcast ÷ peer (below 1 is
// better).
func (r *report) ratios(w func(string, ...any)) {
	var ours, theirs []*peerResult
	for _, p := range r.Peers {
		if p.Name == peerDockcast || p.Name == peerDockcastBatch {
			ours = append(ours, p)
		} else {
			theirs = append(theirs, p)
		}
	}
	if len(ours) == 0 || len(theirs) == 0 {
		return
	}
	w("Ratios, dockcast ÷ peer (throughput: above 1.0 is better; latency and memory: below 1.0 is better):\n\n")
	tableHead(w, []string{"dockcast", "measure"}, theirs, "÷ %s")
	type measure struct {
		name string
		get  func(p *peerResult) (float64, bool)
	}
	measures := []measure{
		{"flat-out messages/s", func(p *peerResult) (float64, bool) {
			return ifOK(p.Flat != nil && p.Flat.Complete, func() float64 { return p.Flat.Delivered })
		}},
		{"p99 at steady rate", func(p *peerResult) (float64, bool) {
			return ifOK(p.Latency != nil && p.Latency.Complete, func() float64 { return float64(p.Latency.Result.P99) })
		}},
		{"p50 at steady rate", func(p *peerResult) (float64, bool) {
			return ifOK(p.Latency != nil && p.Latency.Complete, func() float64 { return float64(p.Latency.Result.P50) })
		}},
		{"memory per idle client", func(p *peerResult) (float64, bool) {
			return ifOK(p.Idle != nil, func() float64 { return p.Idle.perClient() })
		}},
		{"burst to the held clients, messages/s", func(p *peerResult) (float64, bool) {
			return ifOK(p.Held != nil && p.Held.Complete, func() float64 { return p.Held.Delivered })
		}},
	}
	for _, o := range ours {
		for _, m := range measures {
			w("| %s | %s |", o.Title, m.name)
			a, okA := m.get(o)
			for _, t := range theirs {
				if v, okB := m.get(t); okA && okB && v > 0 {
					w(" %.2f× |", a/v)
				} else {
					w(" — |")
				}
			}
			w("\n")
		}
	}
	w("\n")
}

// tableHead writes a markdown table's heading: the fixed columns, then
// one per peer titled with format.
func tableHead(w func(string, ...any), fixed []string, peers []*peerResult, format string) {
	w("|")
	for _, f := range fixed {
		w(" %s |", f)
	}
	for _, p := range peers {
		w(" "+format+" |", p.Title)
	}
	w("\n|" + strings.Repeat("---|", len(fixed)+len(peers)) + "\n")
}

func ifOK(ok bool, f func() float64) (float64, bool) {
	if !ok {
		return 0, false
	}
	return f(), true
}

// targets states issue 9's targets against this run.
func (r *report) targets(w func(string, ...any)) {
	w("## Issue 9's targets in this run\n\n| target | measured | met |\n|---|---|---|\n")
	met := func(ok bool) string { return map[bool]string{true: "yes", false: "**no**"}[ok] }
	d, db, nt, cf := r.peer(peerDockcast), r.peer(peerDockcastBatch), r.peer(peerNATS), r.peer(peerCentrifugo)
	flat := func(p *peerResult) (float64, bool) {
		if p == nil || p.Unsupported != "" || p.Flat == nil || !p.Flat.Complete {
			return 0, false
		}
		return p.Flat.Delivered, true
	}
	if cf != nil && db != nil {
		a, okA := flat(db)
		c, okC := flat(cf)
		switch {
		case db.Unsupported != "":
			w("| `batch=1` flat out ≥ 1.0× Centrifugo | batch=1 %s | **no** |\n", db.Unsupported)
		case okA && okC:
			w("| `batch=1` flat out ≥ 1.0× Centrifugo | %.2f× (%s vs %s msgs/s) | %s |\n", a/c, num(a), num(c), met(a >= c))
		default:
			w("| `batch=1` flat out ≥ 1.0× Centrifugo | no complete run of both | **no** |\n")
		}
	}
	if d != nil && nt != nil {
		a, okA := flat(d)
		n, okN := flat(nt)
		if okA && okN {
			w("| default mode flat out ≥ 1.0× NATS WebSocket | %.2f× (%s vs %s msgs/s) | %s |\n", a/n, num(a), num(n), met(a >= n))
		} else {
			w("| default mode flat out ≥ 1.0× NATS WebSocket | no complete run of both | **no** |\n")
		}
	}
	if d != nil && cf != nil && d.Latency != nil && cf.Latency != nil {
		a, c := d.Latency.Result.P99, cf.Latency.Result.P99
		w("| p99 at %s events/s ≤ Centrifugo's | %s vs %s | %s |\n", num(float64(r.Scale.LatRate)), ms(a), ms(c), met(a <= c && d.Latency.Complete))
	}
	if d != nil && d.Idle != nil {
		v := d.Idle.perClient()
		w("| memory per idle client ≤ 16 KiB | %s | %s |\n", kib(v), met(v <= 16*1024))
	}
	if s := r.Storm; s != nil {
		ok := s.Err == "" && s.Ready == s.Clients && s.Took <= 3*time.Second && s.APIErrors == 0
		w("| %s clients resuming at once live within 3 s, no JetStream API errors | %s, %d API errors | %s |\n",
			num(float64(s.Clients)), secs(s.Took), s.APIErrors, met(ok))
	}
	if p := r.Publisher; p != nil && p.Err == "" && p.Pipeline > 0 && p.Raw > 0 {
		ratio := p.Raw.Seconds() / p.Pipeline.Seconds()
		w("| publisher pipeline ≥ 0.7× raw JetStream async publish | %.2f× | %s |\n", ratio, met(ratio >= 0.7))
	}
	w("\n")
}

func (r *report) stormSection(w func(string, ...any)) {
	s := r.Storm
	if s == nil {
		return
	}
	w("## Reconnect storm (dockcast)\n\n")
	w("A fresh bin/gateway (as right after a restart); %s clients dial it (%d dials in flight) with `from_seq` %d events before the stream's end; ",
		num(float64(s.Clients)), s.Dial, s.Back)
	w("the time is from the first dial to the last client's `live` frame. JetStream API calls and errors are the server's `/jsz` counters over the storm.\n\n")
	if s.Err != "" {
		w("Error: %s\n\n", s.Err)
	}
	w("| clients live | time to all live | events replayed per client (min / max) | out of order | JetStream API calls | per client | API errors | CPU: gateway / nats-server |\n|---|---|---|---|---|---|---|---|\n")
	w("| %s of %s | **%s** | %d / %d | %d | %s | %.1f | %d | %.1f s / %.1f s |\n\n", num(float64(s.Ready)), num(float64(s.Clients)), secs(s.Took),
		s.ReplayedMin, s.ReplayedMax, s.Disorder, num(float64(s.APICalls)), float64(s.APICalls)/float64(max(s.Clients, 1)), s.APIErrors, s.CPU.Server, s.CPU.NATS)
}

func (r *report) breakdownSection(w func(string, ...any)) {
	b := r.Breakdown
	if b == nil {
		return
	}
	w("## Where an idle dockcast client's memory goes\n\n")
	w("The gateway built in-process from its packages (`fanbench gateway`, the same `app.Run` as bin/gateway) with every allocation recorded (`runtime.MemProfileRate=1`); ")
	w("%s idle clients; after two GCs, the heap in use by the package that allocated it (the nearest caller outside generic helpers such as bufio and runtime), and the goroutine stacks; per client.\n\n", num(float64(b.Clients)))
	if b.Err != "" {
		w("Error: %s\n\n", b.Err)
		return
	}
	n := float64(b.Clients)
	type row struct {
		name  string
		bytes float64
		objs  float64
	}
	var rows []row
	var heap float64
	for k, v := range b.After.Components {
		d := float64(v - b.Before.Components[k])
		if d <= 0 {
			continue
		}
		rows = append(rows, row{k, d / n, float64(b.After.Objects[k]-b.Before.Objects[k]) / n})
		heap += d / n
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].bytes > rows[j].bytes })
	stacks := float64(int64(b.After.StackInuse)-int64(b.Before.StackInuse)) / n
	w("| component | per client | objects per client |\n|---|---|---|\n")
	for _, rw := range rows {
		if rw.bytes < 16 {
			continue
		}
		w("| %s | %s | %.1f |\n", rw.name, kib(rw.bytes), rw.objs)
	}
	w("| **heap, total** | **%s** | |\n", kib(heap))
	w("| goroutine stacks (%.1f goroutines per client) | %s | |\n", float64(b.After.Goroutines-b.Before.Goroutines)/n, kib(stacks))
	w("| **heap + stacks** | **%s** | |\n", kib(heap+stacks))
	w("| RSS growth of this process (profiling on) | %s | |\n\n", kib(float64(b.RSSDelta)/n))
	w("Largest allocating functions (heap in use per client):\n\n")
	for _, site := range topSites(diffMap(b.After.Sites, b.Before.Sites), 10) {
		w("- `%s`: %s\n", site, kib(float64(b.After.Sites[site]-b.Before.Sites[site])/n))
	}
	w("\n")
}

func diffMap(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func (r *report) publisherSection(w func(string, ...any)) {
	p := r.Publisher
	if p == nil {
		return
	}
	w("## Publisher: raw JetStream publishes beside the whole pipeline\n\n")
	w("Both into the same nats-server and stream. *Raw*: %s acknowledged async publishes (4,096 in flight) of bench payloads (%d bytes, built with their Msg-Id before the clock starts), first publish to last ack. ",
		num(float64(p.Events)), p.RawPayload)
	w("*Pipeline*: bin/publisher reading a stand-in engine's `/events` (testkit.FakeEngine, serving the Docker API subset the publisher uses), ")
	w("its queue and its acknowledged publishes (atomic batches): %s start events of %s containers with the same attributes (stored payload %d bytes), from the first event emitted to the last one stored. ",
		num(float64(p.Events)), num(float64(p.Containers)), p.PipelinePayload)
	w("The engine is driven as a closed loop with at most %s events emitted and not yet stored (as many as raw has in flight), so that the publisher's queue (10,000 events) never overflows: ", num(pipelineWindow))
	w("the rate is the one the pipeline sustains; every event must be stored exactly once.\n\n")
	if p.Err != "" {
		w("Error: %s\n\n", p.Err)
	}
	w("| | events/s | time |\n|---|---|---|\n")
	if p.Raw > 0 {
		w("| raw async acked publish | **%s** | %s |\n", num(float64(p.Events)/p.Raw.Seconds()), secs(p.Raw))
	}
	if p.Pipeline > 0 {
		w("| publisher pipeline | **%s** | %s (the engine had emitted them all after %s; events it dropped for a slow reader: %d; /events requests: %d) |\n",
			num(float64(p.Events)/p.Pipeline.Seconds()), secs(p.Pipeline), secs(p.Emitted), p.Dropped, p.Streams)
	}
	if p.Raw > 0 && p.Pipeline > 0 {
		w("| pipeline ÷ raw | **%.2f×** | |\n", p.Raw.Seconds()/p.Pipeline.Seconds())
		us := func(s float64) string { return fmt.Sprintf("%.1f µs", s*1e6/float64(p.Events)) }
		w("| CPU per event, raw | client %s, nats-server %s | |\n", us(p.RawCPU.Server), us(p.RawCPU.NATS))
		w("| CPU per event, pipeline | publisher %s, nats-server %s, stand-in engine and harness %s | |\n",
			us(p.PipeCPU.Server), us(p.PipeCPU.NATS), us(p.PipeCPU.Clients))
	}
	w("\n")
}
