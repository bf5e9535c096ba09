// Command loadtest measures one gateway holding many live WebSocket
// clients: it runs an embedded JetStream server, starts bin/gateway as a
// child process, connects BENCH_CLIENTS clients (default 10000, all on
// loopback), publishes events and reports the gateway's memory, the
// messages per second delivered across the clients and the time from
// publish to receipt. The clients live in this process and the gateway in
// its own, so that each stays under the machine's open-file limit.
//
//	make build && cd gateway && go run ./cmd/loadtest
//
// Variables: BENCH_CLIENTS, BENCH_EVENTS (burst size, default 200),
// BENCH_GATEWAY (binary, default <repo>/bin/gateway).
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/natsutil"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type stats struct {
	mu        sync.Mutex
	latencies []time.Duration
	received  atomic.Int64
	live      atomic.Int64
	errors    atomic.Int64
	lastRecv  atomic.Int64 // unix nanos
}

func run() error {
	clients := envInt("BENCH_CLIENTS", 10000)
	burst := envInt("BENCH_EVENTS", 200)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if uint64(clients)+100 > lim.Cur {
		return fmt.Errorf("BENCH_CLIENTS=%d needs more open files than RLIMIT_NOFILE=%d", clients, lim.Cur)
	}
	bin := os.Getenv("BENCH_GATEWAY")
	if bin == "" {
		wd, _ := os.Getwd()
		for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
				bin = filepath.Join(d, "bin", "gateway")
				break
			}
		}
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("gateway binary %q: %v (run make build)", bin, err)
	}

	dir, err := os.MkdirTemp("", "dockcast-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, natsutil.StreamConfig("LOAD", 0, -1, 1)); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "NATS_URL="+ns.ClientURL(), "GATEWAY_STREAM=LOAD", "GATEWAY_ADDR="+addr,
		"GATEWAY_MAX_CLIENTS="+strconv.Itoa(clients+10), "GATEWAY_MAX_CLIENTS_PER_IP="+strconv.Itoa(clients+10), "LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitFor(60*time.Second, func() bool { code, _ := get(base + "/readyz"); return code == 200 }); err != nil {
		return errors.New("gateway not ready")
	}
	before := metrics(base)

	st := &stats{}
	dialer := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 256}
	u := "ws://" + addr + "/ws?filter=type%3Dcontainer"
	conns := make([]*websocket.Conn, clients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	start := time.Now()
	var dialErr atomic.Value
	for i := 0; i < clients; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var c *websocket.Conn
			var err error
			for attempt := 0; attempt < 5; attempt++ {
				if c, _, err = dialer.Dial(u, nil); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				dialErr.Store(err)
				return
			}
			conns[i] = c
			go reader(c, st, i%20 == 0)
		}(i)
	}
	wg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	if err := waitFor(2*time.Minute, func() bool { return st.live.Load() == int64(clients) }); err != nil {
		return fmt.Errorf("only %d of %d clients live", st.live.Load(), clients)
	}
	connectTime := time.Since(start)
	idle := metrics(base)

	// Light load: 20 events, 100 ms apart, for the publish-to-receipt time.
	publishOne := func(i int) error {
		ev := event.New("load", "container", "start", "", fmt.Sprintf("%064d", i), map[string]string{"name": "c" + strconv.Itoa(i), "image": "probe"}, time.Now())
		data, _ := ev.Marshal()
		_, err := js.Publish(ctx, ev.Subject(), data, jetstream.WithMsgID(ev.ID))
		return err
	}
	for i := 0; i < 20; i++ {
		if err := publishOne(i); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := waitFor(time.Minute, func() bool { return st.received.Load() == int64(20*clients) }); err != nil {
		return fmt.Errorf("light load: received %d of %d", st.received.Load(), 20*clients)
	}
	light := st.take()

	// Burst: events as fast as the publisher can, for throughput.
	t0 := time.Now()
	for i := 0; i < burst; i++ {
		if err := publishOne(1000 + i); err != nil {
			return err
		}
	}
	pubDur := time.Since(t0)
	total := int64((20 + burst) * clients)
	if err := waitFor(5*time.Minute, func() bool { return st.received.Load() >= total }); err != nil {
		return fmt.Errorf("burst: received %d of %d", st.received.Load(), total)
	}
	burstDur := time.Unix(0, st.lastRecv.Load()).Sub(t0)
	heavy := st.take()
	after := metrics(base)

	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	fmt.Printf("| measure | value |\n| --- | --- |\n")
	fmt.Printf("| live WebSocket clients held | %d (all received every event; %d read errors) |\n", clients, st.errors.Load())
	fmt.Printf("| time to connect them (100 dials at a time) | %v |\n", connectTime.Round(time.Millisecond))
	fmt.Printf("| gateway RSS: no clients / %d idle clients / after the burst | %s / %s / %s |\n", clients,
		mib(before["process_resident_memory_bytes"]), mib(idle["process_resident_memory_bytes"]), mib(after["process_resident_memory_bytes"]))
	fmt.Printf("| gateway Go heap in use: no clients / %d idle clients | %s / %s |\n", clients,
		mib(before["go_memstats_heap_inuse_bytes"]), mib(idle["go_memstats_heap_inuse_bytes"]))
	fmt.Printf("| gateway memory per idle client (RSS delta / clients) | %.1f KiB |\n",
		(idle["process_resident_memory_bytes"]-before["process_resident_memory_bytes"])/float64(clients)/1024)
	fmt.Printf("| goroutines in the gateway with %d clients | %.0f |\n", clients, idle["go_goroutines"])
	fmt.Printf("| light load (20 events, 10/s): publish -> receipt p50 / p99 / max | %v / %v / %v |\n", pct(light, 50), pct(light, 99), pct(light, 100))
	fmt.Printf("| burst: %d events published in %v, delivered to all %d clients in %v | %.0f messages/s delivered |\n",
		burst, pubDur.Round(time.Millisecond), clients, burstDur.Round(time.Millisecond), float64(burst*clients)/burstDur.Seconds())
	fmt.Printf("| burst: publish -> receipt p50 / p99 / max | %v / %v / %v |\n", pct(heavy, 50), pct(heavy, 99), pct(heavy, 100))
	fmt.Printf("| slow-consumer disconnects | %.0f |\n", after["dockcast_gateway_slow_consumers_total"])
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

func (st *stats) take() []time.Duration {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.latencies
	st.latencies = nil
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s) - 1) * p / 100
	return s[i].Round(100 * time.Microsecond)
}

var seqKey, timeKey = []byte(`"type":"event"`), []byte(`"time_nano":`)

// reader counts event frames; sampled clients record publish-to-receipt
// times (the event's time is when it was made, just before publishing).
func reader(c *websocket.Conn, st *stats, sample bool) {
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && !errors.Is(err, net.ErrClosed) {
				st.errors.Add(1)
			}
			return
		}
		now := time.Now()
		if !bytes.Contains(data, seqKey) {
			if bytes.Contains(data, []byte(`"type":"live"`)) {
				st.live.Add(1)
			}
			continue
		}
		st.received.Add(1)
		st.lastRecv.Store(now.UnixNano())
		if sample {
			if i := bytes.Index(data, timeKey); i >= 0 {
				rest := data[i+len(timeKey):]
				j := bytes.IndexAny(rest, ",}")
				if n, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
					st.mu.Lock()
					st.latencies = append(st.latencies, now.Sub(time.Unix(0, n)))
					st.mu.Unlock()
				}
			}
		}
	}
}

func waitFor(d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func get(u string) (int, string) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func metrics(base string) map[string]float64 {
	_, body := get(base + "/metrics")
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out
}
