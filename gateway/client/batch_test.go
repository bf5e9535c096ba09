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

// trainSink is a rawSink that takes trains (TrainSink): it records the
// frames a train carries, the framed ones parsed back, one by one.
type trainSink struct {
	mu       sync.Mutex
	frames   [][]byte   // written, one per WebSocket frame
	pending  [][][]byte // handed: the frames of each Send or SendTrain
	firsts   [][]byte   // what each hand-off's Written reports
	trains   int
	maxTrain int
	// late: each hand-off, when written, also takes what the client
	// queued since (TakeQueued), as the WebSocket transport does.
	late  bool
	taken int // frames so taken
	c     *Client
}

func (r *trainSink) Send(b []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, [][]byte{b})
	r.firsts = append(r.firsts, b)
	return nil
}

func (r *trainSink) SendTrain(first, rest []byte, n, payload int) error {
	tail, sum, err := splitFrames(rest)
	if err != nil {
		return err
	}
	if len(tail)+1 != n || sum+len(first) != payload {
		return fmt.Errorf("a train of %d frames, %d payload bytes, says %d and %d", len(tail)+1, sum+len(first), n, payload)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trains++
	r.maxTrain = max(r.maxTrain, len(first)+len(rest))
	r.pending = append(r.pending, append([][]byte{first}, tail...))
	r.firsts = append(r.firsts, first)
	return nil
}

// splitFrames parses unmasked final text frames back into their payloads.
func splitFrames(rest []byte) (frames [][]byte, payload int, err error) {
	for len(rest) > 0 {
		if rest[0] != 0x81 || rest[1]&0x80 != 0 {
			return nil, 0, fmt.Errorf("not an unmasked final text frame: % x", rest[:2])
		}
		l, hdr := int(rest[1]), 2
		switch l {
		case 126:
			l, hdr = int(rest[2])<<8|int(rest[3]), 4
		case 127:
			l, hdr = 0, 10
			for _, b := range rest[2:10] {
				l = l<<8 | int(b)
			}
		}
		frames = append(frames, rest[hdr:hdr+l])
		payload += l
		rest = rest[hdr+l:]
	}
	return frames, payload, nil
}

func (r *trainSink) Close(int, string) error { return nil }
func (r *trainSink) Abort()                  {}

func (r *trainSink) drain() {
	for {
		r.mu.Lock()
		p, f := r.pending, r.firsts
		r.pending, r.firsts = nil, nil
		for _, frames := range p {
			for _, b := range frames {
				r.frames = append(r.frames, bytes.Clone(b))
			}
		}
		r.mu.Unlock()
		if len(p) == 0 {
			return
		}
		for i, b := range f {
			if r.late {
				r.takeLate(p[i])
			}
			r.c.Written(b)
		}
	}
}

// takeLate writes, after a hand-off's frames, what the client queued
// since it was handed.
func (r *trainSink) takeLate(handed [][]byte) {
	size := 0
	for _, b := range handed {
		size += len(b) + 10
	}
	buf, n, payload := r.c.TakeQueued(bufferFunc(func() []byte { return nil }), MaxBatchBytes-size)
	frames, sum, err := splitFrames(buf)
	if err != nil || len(frames) != n || sum != payload {
		panic(fmt.Sprintf("TakeQueued: %v; %d frames of %d bytes, says %d and %d", err, len(frames), sum, n, payload))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.taken += n
	for _, b := range frames {
		r.frames = append(r.frames, bytes.Clone(b))
	}
}

// TestBatchFramesSplitIntoPlainFrames: the frames a batch=1 client is
// handed, split at newlines, are exactly the frames a client without batch
// is handed for the same events, in the same order; no batched frame
// exceeds MaxBatchBytes, and a frame larger than that goes alone. Several
// frames do share one (the socket was busy while they queued). The same
// for trains (TrainSink, without batch): the frames a train carries are
// the plain client's, in order, and a train holds at most MaxBatchBytes;
// and the same again when each train's write also takes the frames queued
// since it was handed (TakeQueued).
func TestBatchFramesSplitIntoPlainFrames(t *testing.T) {
	t.Parallel()
	opts := Options{Credits: 4, MaxQueueBytes: 64 << 20, CloseTimeout: time.Minute}
	feed := &Position{}
	plain, batch, train, late := &rawSink{}, &rawSink{}, &trainSink{}, &trainSink{late: true}
	bopts := opts
	bopts.Batch = true
	cp, cb, ct, cl := New(Spec{}, opts), New(Spec{}, bopts), New(Spec{}, opts), New(Spec{}, opts)
	plain.c, batch.c, train.c, late.c = cp, cb, ct, cl
	cp.Attach(plain)
	cb.Attach(batch)
	ct.Attach(train)
	cl.Attach(late)
	status := StatusFrame([]byte("{\n  \"node\": \"n1\",\n  \"connected\": true\n}"), false)
	for _, c := range []*Client{cp, cb, ct, cl} {
		c.JoinLive([][]byte{status}, 0, "42", feed)
	}
	big := strings.Repeat("x", MaxBatchBytes)
	seq := uint64(0)
	offer := func(payload string) {
		seq++
		f := EventFrame(seq, "docker.events.n.container.start", []byte(payload))
		cp.Live(seq, f)
		cb.Live(seq, f)
		ct.Live(seq, f)
		cl.Live(seq, f)
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
			for _, c := range []*Client{cp, cb, ct, cl} {
				c.Status(status)
			}
		}
		if round%4 == 0 {
			// The batch client writes first: a shared frame it reused as
			// a batch buffer would show in what the plain client writes.
			batch.drain()
			train.drain()
			late.drain()
			plain.drain()
		}
	}
	batch.drain()
	train.drain()
	late.drain()
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

	if len(train.frames) != len(plain.frames) {
		t.Fatalf("trains carried %d frames, the plain client got %d", len(train.frames), len(plain.frames))
	}
	for i := range train.frames {
		if !bytes.Equal(train.frames[i], plain.frames[i]) {
			t.Fatalf("train frame %d differs:\n train %.200q\n plain %.200q", i, train.frames[i], plain.frames[i])
		}
	}
	if train.trains == 0 || train.trains >= len(plain.frames) {
		t.Fatalf("%d trains for %d frames: frames did not share trains", train.trains, len(plain.frames))
	}
	if train.maxTrain > MaxBatchBytes {
		t.Fatalf("a train of %d bytes, more than %d", train.maxTrain, MaxBatchBytes)
	}

	if len(late.frames) != len(plain.frames) {
		t.Fatalf("trains with late frames carried %d frames, the plain client got %d", len(late.frames), len(plain.frames))
	}
	for i := range late.frames {
		if !bytes.Equal(late.frames[i], plain.frames[i]) {
			t.Fatalf("late train frame %d differs:\n train %.200q\n plain %.200q", i, late.frames[i], plain.frames[i])
		}
	}
	if late.taken == 0 {
		t.Fatal("no write took the frames queued after its hand-off")
	}
}

// bufferFunc is a function as Buffers.
type bufferFunc func() []byte

func (f bufferFunc) Buffer() []byte { return f() }

// TestTakeQueued: the transport writing the frame in flight takes the
// frames queued since, framed, up to the room it has (a frame that does
// not fit stays, with those after it); nothing when no frame is in
// flight, and nothing for a batched client; the frames taken are not
// handed again, and the next frame is handed once the train is written.
func TestTakeQueued(t *testing.T) {
	t.Parallel()
	opts := Options{Credits: 4, MaxQueueBytes: 64 << 20, CloseTimeout: time.Minute}
	feed := &Position{}
	sink := &trainSink{}
	c := New(Spec{}, opts)
	sink.c = c
	c.Attach(sink)
	none := bufferFunc(func() []byte { t.Fatal("a buffer asked for with nothing to take"); return nil })
	if _, n, _ := c.TakeQueued(none, MaxBatchBytes); n != 0 {
		t.Fatalf("took %d frames with nothing in flight", n)
	}
	c.JoinLive(nil, 0, "42", feed)
	sink.drain() // the live frame
	frame := func(seq uint64) []byte {
		return EventFrame(seq, "docker.events.n.container.start", []byte(fmt.Sprintf(`{"v":1,"n":%d}`, seq)))
	}
	c.Live(1, frame(1)) // handed at once
	for seq := uint64(2); seq <= 4; seq++ {
		c.Live(seq, frame(seq))
	}
	room := 2 * (len(frame(2)) + 2)
	buf, n, payload := c.TakeQueued(bufferFunc(func() []byte { return make([]byte, 0, room) }), room)
	got, sum, err := splitFrames(buf)
	if err != nil || n != 2 || sum != payload || len(got) != 2 || !bytes.Equal(got[0], frame(2)) || !bytes.Equal(got[1], frame(3)) {
		t.Fatalf("took %d frames (%d bytes, %v): %q; want frames 2 and 3", n, payload, err, got)
	}
	if _, n, _ := c.TakeQueued(none, 10); n != 0 {
		t.Fatalf("took %d frames into 10 bytes", n)
	}
	sink.drain() // frame 1 written: frame 4 is handed next, alone
	if len(sink.frames) != 3 || !bytes.Equal(sink.frames[1], frame(1)) || !bytes.Equal(sink.frames[2], frame(4)) {
		t.Fatalf("written %q, want the live frame, frame 1, frame 4", sink.frames)
	}

	bopts := opts
	bopts.Batch = true
	b := New(Spec{}, bopts)
	bs := &trainSink{c: b}
	b.Attach(bs)
	b.JoinLive(nil, 0, "42", feed)
	b.Live(1, frame(1))
	b.Live(2, frame(2))
	if _, n, _ := b.TakeQueued(none, MaxBatchBytes); n != 0 {
		t.Fatalf("a batched client gave %d frames", n)
	}
}
