package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// client is one WebSocket client following every event. It records the
// sequences it receives (first, last, how many, any that did not follow
// the one before) and, if sample is set, each event's latency; when its
// connection breaks it resumes on the next gateway with from_seq and epoch.
type client struct {
	gws    []string // every gateway's host:port
	gw     int      // the gateway it is on
	sample bool

	mu       sync.Mutex
	epoch    string
	first    uint64
	last     uint64 // the last sequence received (or the live frame's)
	events   int
	bad      []string
	lat      []int64 // ns
	resumes  int
	slow     int   // slow_consumer closes (each followed by a resume)
	moved    []int // the gateways it resumed on
	live     bool
	stopping bool
	conn     *websocket.Conn
}

// run connects and reads until ctx ends, resuming after a broken link.
func (c *client) run(ctx context.Context, ready chan<- error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	first := true
	for ctx.Err() == nil {
		q := ""
		c.mu.Lock()
		if c.last > 0 {
			q = fmt.Sprintf("from_seq=%d&epoch=%s", c.last+1, c.epoch)
		}
		gw := c.gw
		c.mu.Unlock()
		conn, resp, err := d.DialContext(ctx, "ws://"+c.gws[gw]+"/ws?"+q, nil)
		if err != nil {
			if first {
				if resp != nil {
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					err = fmt.Errorf("%w: HTTP %d %s", err, resp.StatusCode, strings.TrimSpace(string(body)))
				}
				ready <- fmt.Errorf("connect to %s: %w", c.gws[gw], err)
				return
			}
			c.mu.Lock()
			c.gw = (c.gw + 1) % len(c.gws) // try another gateway
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		c.mu.Lock()
		if c.stopping {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.conn = conn
		if !first {
			c.resumes++
			c.moved = append(c.moved, gw)
		}
		c.mu.Unlock()
		c.read(conn, first, ready)
		first = false
		conn.Close()
	}
}

func (c *client) read(conn *websocket.Conn, first bool, ready chan<- error) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		for line := range bytes.SplitSeq(data, []byte{'\n'}) {
			if len(line) == 0 {
				continue
			}
			c.frame(line, now)
			if first {
				c.mu.Lock()
				live := c.live
				c.mu.Unlock()
				if live {
					ready <- nil
					first = false
				}
			}
		}
	}
}

// sampling turns the latency samples on (only while every gateway is up:
// events replayed after a resume would measure the outage).
var sampling atomic.Bool

var (
	kType  = []byte(`"type":"`)
	kSeq   = []byte(`"seq":`)
	kEpoch = []byte(`"epoch":"`)
	kNano  = []byte(`"time_nano":`)
)

// field returns the digits or the string after key in a frame.
func field(line, key []byte, str bool) []byte {
	i := bytes.Index(line, key)
	if i < 0 {
		return nil
	}
	rest := line[i+len(key):]
	end := 0
	if str {
		end = bytes.IndexByte(rest, '"')
	} else {
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
	}
	if end < 0 {
		return nil
	}
	return rest[:end]
}

func (c *client) frame(line []byte, now int64) {
	typ := string(field(line, kType, true))
	seq, _ := strconv.ParseUint(string(field(line, kSeq, false)), 10, 64)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case "live":
		c.epoch = string(field(line, kEpoch, true))
		if c.last == 0 {
			c.last = seq // every later event has a larger seq; unfiltered, the next is seq+1
		}
		c.live = true
	case "event":
		if c.first == 0 {
			c.first = seq
		}
		if seq != c.last+1 {
			c.bad = append(c.bad, fmt.Sprintf("seq %d after %d", seq, c.last))
		}
		c.last = seq
		c.events++
		if c.sample && sampling.Load() {
			if ns, err := strconv.ParseInt(string(field(line, kNano, false)), 10, 64); err == nil {
				c.lat = append(c.lat, now-ns)
			}
		}
	case "error":
		if bytes.Contains(line, []byte(`"code":"slow_consumer"`)) {
			c.slow++ // the gateway closes the connection; the client resumes at last+1
			return
		}
		c.bad = append(c.bad, "error frame: "+string(line))
	}
}

// stop closes the client's connection for good.
func (c *client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	if c.conn != nil {
		c.conn.Close()
	}
}

func (c *client) snapshot() (first, last uint64, events int, bad []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last, c.events, append([]string(nil), c.bad...)
}

// liveSeq connects to a gateway and returns the sequence of its live frame.
func liveSeq(ctx context.Context, addr string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.DialContext(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return 0, err
		}
		if string(field(data, kType, true)) == "live" {
			return strconv.ParseUint(string(field(data, kSeq, false)), 10, 64)
		}
	}
}
