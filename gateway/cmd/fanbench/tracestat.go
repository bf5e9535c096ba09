package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// runTraceStat reads an execution trace that BENCH_TRACE recorded (the
// in-process gateway's or Centrifugo's) and writes where an event's time
// went between the NATS read loop and each client's write system call:
// the feed's hop, the writers' wait for a CPU, the writes per writer run,
// the fan-out's span, and the same split by GC mark phases (docs/
// benchmarks.md, "Latency, a closer look").
func runTraceStat(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: fanbench tracestat <trace file>")
	}
	roles := map[trace.GoID]role{}
	err := eachEvent(args[0], func(ev trace.Event) {
		if ev.Kind() == trace.EventStateTransition {
			if st := ev.StateTransition(); st.Resource.Kind == trace.ResourceGoroutine {
				learnRole(roles, st.Resource.Goroutine(), st.Stack)
			}
		}
		if g := ev.Goroutine(); g != trace.NoGoroutine {
			learnRole(roles, g, ev.Stack())
		}
	})
	if err != nil {
		return err
	}
	s := newTraceStats(roles)
	if err := eachEvent(args[0], s.event); err != nil {
		return err
	}
	s.write(stdout)
	return nil
}

// role is what a goroutine does, told from its stacks.
type role int

const (
	roleOther  role = iota
	roleRead        // nats.go's read loop
	roleFeed        // runs hub.deliver (or Centrifugo's consumer handler)
	roleWriter      // melody's write pump, Centrifugo's per-client writer
)

var roleNames = [...]string{"other", "nats read loop", "feed", "writer"}

// roleOf tells a goroutine's role from the functions of one of its
// stacks, innermost first.
func roleOf(fns []string) role {
	r := roleOther
	for _, fn := range fns {
		switch {
		case strings.Contains(fn, "hub.(*Hub).watchdog"):
			return roleOther
		case strings.Contains(fn, "melody.(*Session).writePump"), strings.Contains(fn, "centrifuge.(*writer).run"):
			return roleWriter
		case strings.Contains(fn, "hub.(*Hub).follow"), strings.Contains(fn, "hub.(*Hub).deliver"),
			strings.Contains(fn, "NatsJetStreamConsumer).msgHandler"):
			r = roleFeed
		case strings.Contains(fn, "(*Conn).readLoop"): // nats.go's (named nats%2ego in traces)
			if r == roleOther {
				r = roleRead
			}
		}
	}
	return r
}

func learnRole(roles map[trace.GoID]role, g trace.GoID, s trace.Stack) {
	if s == trace.NoStack {
		return
	}
	var fns []string
	for f := range s.Frames() {
		fns = append(fns, f.Func)
	}
	if r := roleOf(fns); r != roleOther && (roles[g] == roleOther || (roles[g] == roleRead && r == roleFeed)) {
		roles[g] = r
	}
}

// burst is one run of the feed goroutine that woke writers.
type burst struct {
	readExit            trace.Time // the read loop's last system call exit before it
	firstWake, lastWake trace.Time
	lastWrite           trace.Time // end of the last write of a writer it woke
}

type interval struct{ from, to trace.Time }

// traceStats follows the goroutines of one trace.
type traceStats struct {
	roles                 map[trace.GoID]role
	first, last           trace.Time
	marks                 []interval
	markOpen              map[string]trace.Time
	lastReadExit          trace.Time
	inSys, wake, fed      map[trace.GoID]trace.Time // fed: a feed goroutine woken by the read loop
	sysWrite              map[trace.GoID]bool
	wakeBurst             map[trace.GoID]*burst
	writesInRun           map[trace.GoID]int
	runsByWrites          map[int]int
	cur                   *burst
	bursts                []*burst
	procs                 int
	procSince             trace.Time
	bothBusy              time.Duration
	feedSched, writerWait []time.Duration
	writeSys              []time.Duration
	toWriteOut, toWriteGC []time.Duration
}

func newTraceStats(roles map[trace.GoID]role) *traceStats {
	return &traceStats{roles: roles, markOpen: map[string]trace.Time{},
		fed: map[trace.GoID]trace.Time{}, inSys: map[trace.GoID]trace.Time{}, wake: map[trace.GoID]trace.Time{},
		sysWrite: map[trace.GoID]bool{}, wakeBurst: map[trace.GoID]*burst{}, writesInRun: map[trace.GoID]int{},
		runsByWrites: map[int]int{}}
}

func (s *traceStats) event(ev trace.Event) {
	t := ev.Time()
	if s.first == 0 {
		s.first = t
	}
	s.last = t
	switch ev.Kind() {
	case trace.EventRangeBegin:
		s.markOpen[ev.Range().Name] = t
	case trace.EventRangeEnd:
		name := ev.Range().Name
		// The phase, not the mark assists inside it (nested ranges
		// would not be sorted by their end).
		if b, ok := s.markOpen[name]; ok && name == "GC concurrent mark phase" {
			s.marks = append(s.marks, interval{b, t})
		}
		delete(s.markOpen, name)
	case trace.EventStateTransition:
		st := ev.StateTransition()
		switch st.Resource.Kind {
		case trace.ResourceProc:
			from, to := st.Proc()
			if s.procs >= 2 {
				s.bothBusy += t.Sub(s.procSince)
			}
			s.procSince = t
			if from.Executing() && !to.Executing() {
				s.procs--
			} else if !from.Executing() && to.Executing() {
				s.procs++
			}
		case trace.ResourceGoroutine:
			from, to := st.Goroutine()
			s.goroutine(ev, st.Resource.Goroutine(), from, to, t)
		}
	}
}

func (s *traceStats) goroutine(ev trace.Event, g trace.GoID, from, to trace.GoState, t trace.Time) {
	r := s.roles[g]
	switch {
	case from == trace.GoWaiting && to == trace.GoRunnable:
		if r == roleFeed && s.roles[ev.Goroutine()] == roleRead {
			s.fed[g] = t
		}
		if r == roleWriter && s.roles[ev.Goroutine()] == roleFeed {
			if s.cur == nil {
				s.cur = &burst{readExit: s.lastReadExit, firstWake: t}
				s.bursts = append(s.bursts, s.cur)
			}
			s.cur.lastWake = t
			s.wake[g], s.wakeBurst[g] = t, s.cur
		}
	case from == trace.GoRunnable && to == trace.GoRunning:
		switch r {
		case roleFeed:
			if since, ok := s.fed[g]; ok {
				s.feedSched = append(s.feedSched, t.Sub(since))
				delete(s.fed, g)
			}
			s.cur = nil
		case roleWriter:
			if w, ok := s.wake[g]; ok {
				s.writerWait = append(s.writerWait, t.Sub(w))
			}
		}
	case to == trace.GoSyscall:
		s.inSys[g] = t
		stk := ev.Stack()
		s.sysWrite[g] = hasFrame(stk, "poll.(*FD).Write") || hasFrame(stk, "poll.(*FD).Writev")
		if r == roleWriter {
			s.writesInRun[g]++
		}
	case from == trace.GoSyscall:
		began, ok := s.inSys[g]
		delete(s.inSys, g)
		if !ok {
			break
		}
		if r == roleRead {
			s.lastReadExit = t
		}
		if r != roleWriter || !s.sysWrite[g] {
			break
		}
		s.writeSys = append(s.writeSys, t.Sub(began))
		w, ok := s.wake[g]
		if !ok {
			break
		}
		b := s.wakeBurst[g]
		b.lastWrite = max(b.lastWrite, t)
		start := w
		if b.readExit != 0 && b.readExit < b.firstWake {
			start = b.readExit
		}
		if during(s.marks, start) {
			s.toWriteGC = append(s.toWriteGC, t.Sub(start))
		} else {
			s.toWriteOut = append(s.toWriteOut, t.Sub(start))
		}
		delete(s.wake, g)
		delete(s.wakeBurst, g)
	case to == trace.GoWaiting:
		if r == roleWriter {
			s.runsByWrites[s.writesInRun[g]]++
			s.writesInRun[g] = 0
		}
		if r == roleFeed {
			s.cur = nil
		}
	}
}

func (s *traceStats) write(w io.Writer) {
	span := s.last.Sub(s.first)
	var mark time.Duration
	for _, iv := range s.marks {
		mark += iv.to.Sub(iv.from)
	}
	count := map[role]int{}
	for _, r := range s.roles {
		count[r]++
	}
	fmt.Fprintf(w, "trace of %v: goroutines %d %s, %d %s, %d %s\n", span.Round(time.Millisecond),
		count[roleRead], roleNames[roleRead], count[roleFeed], roleNames[roleFeed], count[roleWriter], roleNames[roleWriter])
	fmt.Fprintf(w, "both Ps running %.1f %% of the time; GC mark phases %.2f %% of the time\n",
		percent(s.bothBusy, span), percent(mark, span))
	dist(w, "feed goroutine: woken by the read loop -> running", s.feedSched)
	dist(w, "writer: woken by the feed -> running", s.writerWait)
	dist(w, "writer: write system call", s.writeSys)
	var wakeSpan, fan []time.Duration
	for _, b := range s.bursts {
		if b.lastWrite != 0 {
			wakeSpan = append(wakeSpan, b.lastWake.Sub(b.firstWake))
			fan = append(fan, b.lastWrite.Sub(b.firstWake))
		}
	}
	dist(w, "fan-out: first writer woken -> last woken", wakeSpan)
	dist(w, "fan-out: first writer woken -> last write done", fan)
	dist(w, "read loop syscall exit -> a write done, read outside marks", s.toWriteOut)
	dist(w, "read loop syscall exit -> a write done, read in a GC mark", s.toWriteGC)
	keys := make([]int, 0, len(s.runsByWrites))
	for k := range s.runsByWrites {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	fmt.Fprint(w, "writer runs (wake -> block) by the writes they made:")
	for _, k := range keys {
		fmt.Fprintf(w, " %d: %d;", k, s.runsByWrites[k])
	}
	fmt.Fprintf(w, " write system calls: %d\n", len(s.writeSys))
}

func hasFrame(s trace.Stack, sub string) bool {
	for f := range s.Frames() {
		if strings.Contains(f.Func, sub) {
			return true
		}
	}
	return false
}

// during reports whether t lies in one of ivs (sorted by end).
func during(ivs []interval, t trace.Time) bool {
	i := sort.Search(len(ivs), func(i int) bool { return ivs[i].to >= t })
	return i < len(ivs) && ivs[i].from <= t
}

func percent(d, of time.Duration) float64 {
	if of <= 0 {
		return 0
	}
	return 100 * d.Seconds() / of.Seconds()
}

// dist writes the count, mean, p50, p99 and max of ds.
func dist(w io.Writer, name string, ds []time.Duration) {
	if len(ds) == 0 {
		fmt.Fprintf(w, "%-58s none\n", name)
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	us := func(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1e3) }
	fmt.Fprintf(w, "%-58s n %d, mean %s, p50 %s, p99 %s, max %s\n", name, len(s),
		us(sum/time.Duration(len(s))), us(q(.5)), us(q(.99)), us(s[len(s)-1]))
}

// eachEvent calls fn with every event of the trace at path.
func eachEvent(path string, fn func(trace.Event)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", path, err)
	}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read trace %s: %w", path, err)
		}
		fn(ev)
	}
}
