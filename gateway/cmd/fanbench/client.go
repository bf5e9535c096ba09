package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Protocols a client process speaks.
const (
	protoDockcast   = "dockcast"
	protoNATS       = "nats"
	protoCentrifugo = "centrifugo"
)

// clientFlags configure a client process.
type clientFlags struct {
	proto   string
	url     string
	clients int
	dial    int // dials in flight at once
	expect  int // events each client must receive after it is ready
	subject string
	channel string
	ready   time.Duration
}

// readyMsg is the client process's first line on stdout: every client is
// subscribed (NATS, Centrifugo) or live (dockcast), or some failed.
type readyMsg struct {
	Event      string `json:"event"` // "ready"
	Clients    int    `json:"clients"`
	Ready      int    `json:"ready"`
	TookNanos  int64  `json:"took_ns"` // from the first dial to the last client ready
	DialErrors int    `json:"dial_errors"`
	FirstError string `json:"first_error,omitempty"`
	// PreReadyMin/Max: events each client got before it was ready (the
	// replay of a resuming dockcast client).
	PreReadyMin int `json:"pre_ready_min"`
	PreReadyMax int `json:"pre_ready_max"`
	Disorder    int `json:"disorder"`
}

// resultMsg answers a wait command.
type resultMsg struct {
	Event      string         `json:"event"` // "result"
	Clients    int            `json:"clients"`
	Complete   int            `json:"complete"` // clients that got every expected event
	Min        int            `json:"min"`
	Max        int            `json:"max"`
	Total      int64          `json:"total"`
	FirstRecv  int64          `json:"first_recv"` // unix nanos
	LastRecv   int64          `json:"last_recv"`
	Samples    int            `json:"samples"`
	P50        int64          `json:"p50_ns"`
	P99        int64          `json:"p99_ns"`
	PMax       int64          `json:"max_ns"`
	Disorder   int            `json:"disorder"` // events out of order or repeated
	Resumes    int            `json:"resumes"`  // dockcast clients reconnected with from_seq after slow_consumer
	Errors     map[string]int `json:"errors,omitempty"`
	ReadErrors int            `json:"read_errors"`
}

// command is a line the orchestrator writes to a client process's stdin.
type command struct {
	Cmd     string `json:"cmd"` // "wait" or "quit"
	Timeout int64  `json:"timeout_ns"`
}

// conn is one benchmark client.
type conn struct {
	p  *clientProc
	ws *websocket.Conn

	mu       sync.Mutex
	ready    bool
	preReady int
	received int
	next     int64 // next bench index expected; 0 before the first
	disorder int
	lat      []int64
	errCode  string
	readErr  bool
	first    int64 // receipt times of the first and last counted events
	last     int64
	resume   uint64 // dockcast: resume_from_seq of a slow_consumer error
	resumes  int

	nats natsParser
}

// clientProc is the state of a client process.
type clientProc struct {
	f        clientFlags
	conns    []*conn
	readyN   atomic.Int64
	complete atomic.Int64
	readyAt  atomic.Int64
}

func runClient(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("fanbench client", flag.ContinueOnError)
	var f clientFlags
	fs.StringVar(&f.proto, "proto", protoDockcast, "dockcast, nats or centrifugo")
	fs.StringVar(&f.url, "url", "", "WebSocket URL")
	fs.IntVar(&f.clients, "n", 1, "clients")
	fs.IntVar(&f.dial, "dial", 100, "dials in flight at once")
	fs.IntVar(&f.expect, "expect", 0, "events each client must receive once ready")
	fs.StringVar(&f.subject, "subject", "docker.events.>", "NATS subject")
	fs.StringVar(&f.channel, "channel", benchChannel, "Centrifugo channel")
	fs.DurationVar(&f.ready, "ready-timeout", 3*time.Minute, "how long clients may take to be ready")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.url == "" || f.clients < 1 || f.dial < 1 {
		return errors.New("client: -url, -n >= 1 and -dial >= 1 are required")
	}
	if !slices.Contains([]string{protoDockcast, protoNATS, protoCentrifugo}, f.proto) {
		return fmt.Errorf("client: unknown -proto %q", f.proto)
	}
	if err := raiseFileLimit(f.clients + 64); err != nil {
		return err
	}
	p := &clientProc{f: f}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(p.connect(ctx)); err != nil {
		return err
	}
	defer p.closeAll()
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var c command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("client: bad command %q: %w", sc.Text(), err)
		}
		switch c.Cmd {
		case "wait":
			if err := enc.Encode(p.wait(ctx, time.Duration(c.Timeout))); err != nil {
				return err
			}
		case "quit":
			return nil
		default:
			return fmt.Errorf("client: unknown command %q", c.Cmd)
		}
	}
	return sc.Err()
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard one and checks
// that need descriptors fit.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if uint64(need) > lim.Cur {
		return fmt.Errorf("%d open files needed, RLIMIT_NOFILE is %d", need, lim.Cur)
	}
	return nil
}

// connect dials every client and waits until each is ready.
func (p *clientProc) connect(ctx context.Context) readyMsg {
	f := p.f
	dialer := websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}
	p.conns = make([]*conn, f.clients)
	start := time.Now()
	sem := make(chan struct{}, f.dial)
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	var firstErr atomic.Value
	for i := range p.conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := p.dialOne(ctx, &dialer)
			if err != nil {
				dialErrs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			p.conns[i] = c
			go c.read()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(f.ready)
	want := int64(f.clients) - dialErrs.Load()
	for p.readyN.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	m := readyMsg{Event: "ready", Clients: f.clients, Ready: int(p.readyN.Load()), DialErrors: int(dialErrs.Load()),
		TookNanos: p.readyAt.Load() - start.UnixNano(), PreReadyMin: -1}
	if s, ok := firstErr.Load().(string); ok {
		m.FirstError = s
	}
	for _, c := range p.conns {
		if c == nil {
			continue
		}
		c.mu.Lock()
		if m.PreReadyMin < 0 || c.preReady < m.PreReadyMin {
			m.PreReadyMin = c.preReady
		}
		m.PreReadyMax = max(m.PreReadyMax, c.preReady)
		m.Disorder += c.disorder
		if !c.ready && m.FirstError == "" {
			m.FirstError = "not ready: " + c.errCode
		}
		c.mu.Unlock()
	}
	m.PreReadyMin = max(m.PreReadyMin, 0)
	return m
}

// dialOne opens one client and sends what subscribes it. Network errors
// are retried a few times; an HTTP refusal is not.
func (p *clientProc) dialOne(ctx context.Context, d *websocket.Dialer) (*conn, error) {
	var ws *websocket.Conn
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var resp *http.Response
		ws, resp, err = d.DialContext(ctx, p.f.url, nil)
		if err == nil {
			break
		}
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w", p.f.url, handshakeError(resp, err))
		}
		time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", p.f.url, err)
	}
	c := &conn{p: p, ws: ws}
	switch p.f.proto {
	case protoNATS:
		err = ws.WriteMessage(websocket.BinaryMessage, natsCommands(p.f.subject))
	case protoCentrifugo:
		err = ws.WriteMessage(websocket.TextMessage, centrifugoCommands(p.f.channel))
	}
	if err != nil {
		_ = ws.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

// handshakeError names the HTTP status and the first line of the body of
// a refused upgrade.
func handshakeError(resp *http.Response, err error) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	return &httpRefusal{Status: resp.StatusCode, Body: line, err: err}
}

// httpRefusal is an upgrade answered with an HTTP error.
type httpRefusal struct {
	Status int
	Body   string
	err    error
}

func (e *httpRefusal) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }
func (e *httpRefusal) Unwrap() error { return e.err }

// read counts what the server sends until the connection ends.
func (c *conn) read() {
	var buf bytes.Buffer
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			c.mu.Lock()
			resume := c.resume
			c.resume = 0
			c.mu.Unlock()
			if resume > 0 && c.resumeAt(resume) {
				continue
			}
			c.mu.Lock()
			if !errors.Is(err, net.ErrClosed) && !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				c.readErr = true
				if c.errCode == "" {
					c.errCode = "read: " + err.Error()
				}
			}
			c.mu.Unlock()
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			continue // the next NextReader reports it
		}
		now := time.Now().UnixNano()
		if err := c.frame(buf.Bytes(), now); err != nil {
			c.mu.Lock()
			c.readErr, c.errCode = true, err.Error()
			c.mu.Unlock()
			_ = c.ws.Close()
			return
		}
	}
}

// resumeAt reconnects a dockcast client dropped as a slow consumer with
// from_seq=seq, as the contract tells clients to: nothing is lost.
func (c *conn) resumeAt(seq uint64) bool {
	u, err := withFromSeq(c.p.f.url, seq)
	if err == nil {
		var ws *websocket.Conn
		d := websocket.Dialer{HandshakeTimeout: 60 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}
		if ws, _, err = d.Dial(u, nil); err == nil {
			c.mu.Lock()
			_ = c.ws.Close()
			c.ws = ws
			c.resumes++
			c.mu.Unlock()
			return true
		}
	}
	c.mu.Lock()
	c.readErr, c.errCode = true, "resume: "+err.Error()
	c.mu.Unlock()
	return false
}

// frame handles one WebSocket message.
func (c *conn) frame(data []byte, now int64) error {
	switch c.p.f.proto {
	case protoDockcast:
		eachLine(data, func(line []byte) {
			kind, text := dockcastLine(line)
			if kind == kindError && text == "slow_consumer" {
				if _, resume := dockcastError(line); resume > 0 {
					c.mu.Lock()
					c.resume = resume
					c.mu.Unlock()
					return
				}
			}
			c.handle(kind, line, text, now)
		})
	case protoCentrifugo:
		var pong bool
		eachLine(data, func(line []byte) {
			kind, text := centrifugoLine(line)
			if kind == kindPing {
				pong = true
			}
			c.handle(kind, line, text, now)
		})
		if pong {
			return c.ws.WriteMessage(websocket.TextMessage, []byte(`{}`))
		}
	case protoNATS:
		var pong bool
		err := c.nats.feed(data, func(kind frameKind, payload []byte) {
			if kind == kindPing {
				pong = true
			}
			c.handle(kind, payload, string(payload), now)
		})
		if err != nil {
			return err
		}
		if pong {
			return c.ws.WriteMessage(websocket.BinaryMessage, natsPong)
		}
	}
	return nil
}

// handle counts one message.
func (c *conn) handle(kind frameKind, data []byte, text string, now int64) {
	switch kind {
	case kindReady:
		c.mu.Lock()
		already := c.ready
		c.ready = true
		c.mu.Unlock()
		if !already {
			c.p.readyN.Add(1)
			storeMax(&c.p.readyAt, now)
		}
	case kindError:
		c.mu.Lock()
		if c.errCode == "" {
			c.errCode = text
		}
		c.mu.Unlock()
	case kindEvent:
		n, sent, ok := scanEvent(data)
		c.mu.Lock()
		defer c.mu.Unlock()
		if !ok {
			c.disorder++
			return
		}
		if c.next != 0 && n != c.next {
			c.disorder++
		}
		c.next = n + 1
		if !c.ready {
			c.preReady++
			return
		}
		c.received++
		expect := c.p.f.expect
		if expect > 0 && c.received > expect {
			return
		}
		c.lat = append(c.lat, now-sent)
		if c.first == 0 {
			c.first = now
		}
		c.last = now
		if c.received == expect {
			c.p.complete.Add(1)
		}
	}
}

func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// wait returns once every client has its expected events, or nothing has
// arrived for 20 s, or timeout passed.
func (p *clientProc) wait(ctx context.Context, timeout time.Duration) resultMsg {
	deadline := time.Now().Add(timeout)
	lastTotal, lastChange := int64(-1), time.Now()
	for p.complete.Load() < int64(len(p.conns)) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if t := p.received(); t != lastTotal {
			lastTotal, lastChange = t, time.Now()
		} else if time.Since(lastChange) > 20*time.Second {
			break
		}
	}
	r := resultMsg{Event: "result", Clients: len(p.conns), Complete: int(p.complete.Load()), Min: -1}
	var lat []int64
	for _, c := range p.conns {
		if c == nil {
			r.Min = 0
			continue
		}
		c.mu.Lock()
		if r.Min < 0 || c.received < r.Min {
			r.Min = c.received
		}
		r.Max = max(r.Max, c.received)
		r.Total += int64(c.received)
		r.Disorder += c.disorder
		r.Resumes += c.resumes
		if c.first != 0 && (r.FirstRecv == 0 || c.first < r.FirstRecv) {
			r.FirstRecv = c.first
		}
		r.LastRecv = max(r.LastRecv, c.last)
		lat = append(lat, c.lat...)
		if c.errCode != "" {
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			code, _, _ := strings.Cut(c.errCode, ":")
			r.Errors[code]++
		}
		if c.readErr {
			r.ReadErrors++
		}
		c.mu.Unlock()
	}
	r.Min = max(r.Min, 0)
	slices.Sort(lat)
	r.Samples = len(lat)
	r.P50, r.P99, r.PMax = percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	return r
}

// received is the number of events the clients have counted.
func (p *clientProc) received() int64 {
	var n int64
	for _, c := range p.conns {
		if c != nil {
			c.mu.Lock()
			n += int64(c.received)
			c.mu.Unlock()
		}
	}
	return n
}

// percentile of sorted values (nearest rank).
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func (p *clientProc) closeAll() {
	for _, c := range p.conns {
		if c != nil {
			c.mu.Lock()
			_ = c.ws.Close()
			c.mu.Unlock()
		}
	}
}
