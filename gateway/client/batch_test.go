package client

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawSink is a socket that is slow to write: it holds the frames it is
// handed and writes them (records a copy, reports them written) only when
// drained, so that a buffer reused too early would show.
type rawSink struct {
	mu      sync.Mutex
	frames  [][]byte // written
	pending [][]byte // handed, not yet written
	c       *Client
}

func (r *rawSink) Send(b []byte) error {
	r.mu.Lock()
	r.pending = append(r.pending, b)
	r.mu.Unlock()
	return nil
}
func (r *rawSink) Close(int, string) error { return nil }
func (r *rawSink) Abort()                  {}

// drain writes every frame handed so far, one by one (each Written may
// hand the next frame at once).
func (r *rawSink) drain() {
	for {
		r.mu.Lock()
		p := r.pending
		r.pending = nil
		for _, b := range p {
			r.frames = append(r.frames, bytes.Clone(b))
		}
		r.mu.Unlock()
		if len(p) == 0 {
			return
		}
		for _, b := range p {
			r.c.Written(b)
		}
	}
}

// TestBatchFramesSplitIntoPlainFrames: the frames a batch=1 client is
// handed, split at newlines, are exactly the frames a client without batch
// is handed for the same events, in the same order; no batched frame
// exceeds MaxBatchBytes, and a frame larger than that goes alone. Several
// frames do share one (the socket was busy while they queued).
func TestBatchFramesSplitIntoPlainFrames(t *testing.T) {
	t.Parallel()
	opts := Options{Credits: 4, MaxQueueBytes: 64 << 20, CloseTimeout: time.Minute}
	feed := &Position{}
	plain, batch := &rawSink{}, &rawSink{}
	bopts := opts
	bopts.Batch = true
	cp, cb := New(Spec{}, opts), New(Spec{}, bopts)
	plain.c, batch.c = cp, cb
	cp.Attach(plain)
	cb.Attach(batch)
	status := StatusFrame([]byte("{\n  \"node\": \"n1\",\n  \"connected\": true\n}"), false)
	for _, c := range []*Client{cp, cb} {
		c.JoinLive([][]byte{status}, 0, "42", feed)
	}
	big := strings.Repeat("x", MaxBatchBytes)
	seq := uint64(0)
	offer := func(payload string) {
		seq++
		f := EventFrame(seq, "docker.events.n.container.start", []byte(payload))
		cp.Live(seq, f)
		cb.Live(seq, f)
	}
	for round := 0; round < 40; round++ {
		for i := 0; i < round*7%50; i++ {
			offer(fmt.Sprintf(`{"v":1,"type":"container","action":"start","actor":{"id":"%d","attributes":{"name":%q}}}`, i, strings.Repeat("n", i*97%3000)))
		}
		switch round % 9 {
		case 3:
			offer(`{"v":1,"type":"container","action":"start","actor":{"attributes":{"big":"` + big + `"}}}`)
		case 5:
			// A payload with line breaks between its tokens.
			offer("{\n\"v\": 1,\r\n\"type\": \"container\",\n\"action\": \"start\"\n}")
		case 7:
			for _, c := range []*Client{cp, cb} {
				c.Status(status)
			}
		}
		if round%4 == 0 {
			// The batch client writes first: a shared frame it reused as
			// a batch buffer would show in what the plain client writes.
			batch.drain()
			plain.drain()
		}
	}
	batch.drain()
	plain.drain()

	var lines [][]byte
	multi := false
	for _, f := range batch.frames {
		parts := bytes.Split(f, []byte("\n"))
		if len(parts) > 1 {
			multi = true
			if len(f) > MaxBatchBytes {
				t.Fatalf("a batched frame of %d lines holds %d bytes, more than %d", len(parts), len(f), MaxBatchBytes)
			}
		}
		lines = append(lines, parts...)
	}
	if !multi {
		t.Fatal("no frame held several lines")
	}
	if len(lines) != len(plain.frames) {
		t.Fatalf("batch frames split into %d lines, the plain client got %d frames", len(lines), len(plain.frames))
	}
	sawBig := false
	for i := range lines {
		if bytes.ContainsAny(plain.frames[i], "\r\n") {
			t.Fatalf("plain frame %d holds a line break: %q", i, plain.frames[i])
		}
		if !bytes.Equal(lines[i], plain.frames[i]) {
			t.Fatalf("line %d differs:\n batch %.200q\n plain %.200q", i, lines[i], plain.frames[i])
		}
		sawBig = sawBig || len(lines[i]) > MaxBatchBytes
	}
	if !sawBig {
		t.Fatal("the large frames were not sent")
	}
	if len(batch.frames) >= len(plain.frames) {
		t.Fatalf("batch: %d frames for %d lines", len(batch.frames), len(plain.frames))
	}
}
