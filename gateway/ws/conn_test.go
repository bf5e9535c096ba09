package ws

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/client"
)

// recConn records the writes and write deadlines that reach the socket.
type recConn struct {
	net.Conn
	writes    [][]byte
	deadlines []time.Time
}

func (r *recConn) Write(p []byte) (int, error) {
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}

func (r *recConn) SetWriteDeadline(t time.Time) error {
	r.deadlines = append(r.deadlines, t)
	return nil
}

// TestConnCoalescesQueuedFrames: while more frames wait in melody, what
// gorilla writes is held back and goes out in one write with the last of
// them, in order; a write too large to hold flushes what is held first;
// the deadline reaches the socket only when it moved by more than
// deadlineSlack.
func TestConnCoalescesQueuedFrames(t *testing.T) {
	t.Parallel()
	rec := &recConn{}
	k := &conn{Conn: rec}
	t0 := time.Now().Add(10 * time.Second)
	for range 3 {
		k.handed()
	}
	for i, p := range []string{"a", "b", "c"} {
		_ = k.SetWriteDeadline(t0.Add(time.Duration(i) * 100 * time.Millisecond))
		if _, err := k.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
		if i < 2 && len(rec.writes) != 0 {
			t.Fatalf("frame %d of 3 written at once: %q", i, rec.writes)
		}
		k.written()
	}
	if len(rec.writes) != 1 || string(rec.writes[0]) != "abc" {
		t.Fatalf("writes %q, want one write \"abc\"", rec.writes)
	}
	if len(rec.deadlines) != 1 {
		t.Fatalf("deadlines set %v, want one (they moved by less than %v)", rec.deadlines, deadlineSlack)
	}

	// Alone: written at once; a deadline 2 s later is set again.
	k.handed()
	_ = k.SetWriteDeadline(t0.Add(2 * time.Second))
	_, _ = k.Write([]byte("d"))
	k.written()
	if len(rec.writes) != 2 || len(rec.deadlines) != 2 {
		t.Fatalf("writes %q, deadlines %v", rec.writes, rec.deadlines)
	}

	// Held back, then a large write: what is held goes first.
	k.handed()
	k.handed()
	_, _ = k.Write([]byte("e"))
	big := bytes.Repeat([]byte("x"), corkBytes)
	_, _ = k.Write(big)
	if len(rec.writes) != 4 || string(rec.writes[2]) != "e" || !bytes.Equal(rec.writes[3], big) {
		t.Fatalf("after a large write: %d writes", len(rec.writes))
	}
}

// TestConnWritesControlFramesAtOnce: a close reply (or pong) written while
// frames are still queued goes out at once, with what is held before it:
// gorilla writes nothing after a close, so a held close never left and the
// client waited out its close handshake.
func TestConnWritesControlFramesAtOnce(t *testing.T) {
	t.Parallel()
	rec := &recConn{}
	k := &conn{Conn: rec}
	for range 3 {
		k.handed()
	}
	_, _ = k.Write([]byte("a"))
	closeFrame := []byte{0x88, 0x02, 0x03, 0xe8} // close 1000
	if _, err := k.Write(closeFrame); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 1 || !bytes.Equal(rec.writes[0], append([]byte("a"), closeFrame...)) {
		t.Fatalf("writes %q, want what was held and the close frame at once", rec.writes)
	}
	for _, p := range [][]byte{{0x81, 0x01, 'x'}, {0x88, 0x05, 0x03}, {'{', '"'}} {
		if isControl(p) {
			t.Errorf("%q taken for a control frame", p)
		}
	}
}

// TestConnWritesATrainAfterItsFirstFrame: a train's tail goes out right
// after the data frame gorilla writes next, with anything held before it;
// a control frame written in between (a pong) neither takes the tail nor
// waits for it; the sent hook then reports the whole train.
func TestConnWritesATrainAfterItsFirstFrame(t *testing.T) {
	t.Parallel()
	rec := &recConn{}
	k := &conn{Conn: rec}
	k.handed()
	k.tail, k.trainN, k.trainBytes = []byte("TAIL"), 3, 9
	pong := []byte{0x8a, 0x00}
	if _, err := k.Write(pong); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 1 || !bytes.Equal(rec.writes[0], pong) || k.tail == nil {
		t.Fatalf("pong: writes %q, tail %q: want the pong alone, the tail kept", rec.writes, k.tail)
	}
	first := []byte{0x81, 0x03, 'a', 'b', 'c'}
	if n, err := k.Write(first); err != nil || n != len(first) {
		t.Fatalf("write first: %d, %v", n, err)
	}
	var all []byte
	for _, w := range rec.writes[1:] {
		all = append(all, w...)
	}
	if want := append(bytes.Clone(first), "TAIL"...); !bytes.Equal(all, want) || k.tail != nil {
		t.Fatalf("wrote %q after the pong, want %q", all, want)
	}
	if frames, size := k.sentTrain(len(first)); frames != 3 || size != 9 {
		t.Fatalf("sent hook: %d frames %d bytes, want the train's 3 and 9", frames, size)
	}
	if frames, size := k.sentTrain(5); frames != 1 || size != 5 {
		t.Fatalf("after the train: %d frames %d bytes, want 1 and 5", frames, size)
	}
}

// wrapped is a transparent wrapper of a connection, as the guarded
// listener's.
type wrapped struct{ net.Conn }

func (w wrapped) Unwrap() net.Conn { return w.Conn }

// TestTrainReachesTheSocket: writes go to the socket under transparent
// wrappers, where net.Buffers writes a train with one writev (through a
// wrapper it would write each buffer on its own); a connection that is not
// a wrapper is written as it is.
func TestTrainReachesTheSocket(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := unwrap(wrapped{wrapped{a}}); got != a {
		t.Fatalf("unwrap gave %T, want the connection under both wrappers", got)
	}
	if got := unwrap(a); got != a {
		t.Fatalf("unwrap of an unwrapped connection gave %T", got)
	}
	rec := &recConn{}
	k := &conn{Conn: wrapped{rec}, raw: unwrap(wrapped{rec})}
	k.handed()
	k.tail = []byte("-tail")
	if _, err := k.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(rec.writes, nil); string(got) != "first-tail" {
		t.Fatalf("the socket got %q, want the train", got)
	}
}

// stubTrains is a transport's sink that only records what it is handed.
type stubTrains struct{ handed [][]byte }

func (s *stubTrains) Send(b []byte) error { s.handed = append(s.handed, b); return nil }
func (s *stubTrains) SendTrain(first, _ []byte, _, _ int) error {
	s.handed = append(s.handed, first)
	return nil
}
func (s *stubTrains) Close(int, string) error { return nil }
func (s *stubTrains) Abort()                  {}

// TestConnTakesLateFrames: the frame in flight goes out with the frames
// its client queued after handing it, in the same write, in order, and
// the sent hook counts them; a part of a frame, or a fragment, takes
// none (frames may follow only a whole final frame).
func TestConnTakesLateFrames(t *testing.T) {
	t.Parallel()
	c := client.New(client.Spec{}, client.Options{Credits: 2, MaxQueueBytes: 1 << 20, CloseTimeout: time.Minute})
	sink := &stubTrains{}
	c.Attach(sink)
	c.JoinLive(nil, 0, "42", &client.Position{})
	rec := &recConn{}
	k := &conn{Conn: rec, c: c}
	k.handed() // the live frame
	live := sink.handed[0]
	framed := func(p []byte) []byte { return append(client.AppendTextFrameHeader(nil, len(p)), p...) }
	f := func(seq uint64) []byte {
		return client.EventFrame(seq, "docker.events.n.container.start", []byte(`{"v":1}`))
	}
	c.Live(1, f(1))
	c.Live(2, f(2))

	// A fragment (FIN clear) and the first part of a frame take nothing.
	if _, err := k.Write([]byte{0x01, 0x01, 'x'}); err != nil {
		t.Fatal(err)
	}
	whole := framed(live)
	if _, err := k.Write(whole[:len(whole)-1]); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(rec.writes, nil); len(got) != 3+len(whole)-1 {
		t.Fatalf("a fragment and a part of a frame took frames along: %q", got)
	}
	rec.writes = nil

	if _, err := k.Write(whole); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Clone(whole), framed(f(1))...), framed(f(2))...)
	if got := bytes.Join(rec.writes, nil); !bytes.Equal(got, want) {
		t.Fatalf("wrote %q, want the live frame, then frames 1 and 2", got)
	}
	if frames, size := k.sentTrain(len(live)); frames != 3 || size != len(live)+len(f(1))+len(f(2)) {
		t.Fatalf("sent hook: %d frames, %d bytes; want 3 and the three payloads", frames, size)
	}
	k.written()
	c.Written(live)
	if len(sink.handed) != 1 {
		t.Fatalf("frames taken late were handed again: %q", sink.handed[1:])
	}
}
