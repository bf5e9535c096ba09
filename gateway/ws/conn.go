package ws

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dockcast/dockcast/gateway/client"
)

// corkBytes bounds the bytes a connection holds back for one write.
const corkBytes = 64 << 10

// deadlineSlack is how far the socket's write deadline may lag behind the
// one asked for before it is set again: melody asks for a new one before
// every frame, which costs a timer update each time.
const deadlineSlack = time.Second

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, corkBytes); return &b }}

// conn is the network connection under one WebSocket. While more frames
// are waiting in melody's session buffer (queued > 1: the one being
// written and others), what gorilla writes is held back and goes out in
// one write with the last of them (or when corkBytes are held): a client
// with a backlog costs one system call per 64 KiB, not one per frame.
// A frame written alone takes along, in the same writev, the rest of its
// train and the frames its client queued since it was handed (takeLate). The
// write deadline is set on the socket only when it moved by more than
// deadlineSlack. gorilla serialises its writes; mu guards the buffer
// and the deadlines all the same (SetWriteDeadline comes from melody).
type conn struct {
	net.Conn
	// raw is where writes go: the connection under Conn's transparent
	// wrappers (Unwrapper), so that a train's buffers go out with one
	// writev (net.Buffers does that only on the socket itself; through a
	// wrapper it writes each buffer on its own). nil: Conn.
	raw net.Conn
	// c is the client served on the connection.
	c *client.Client
	// queued counts the text frames handed to melody and not yet
	// reported written.
	queued atomic.Int64
	// sending is set while a frame is handed to melody, so that a frame
	// melody drops (its buffer full) is taken off queued.
	sending atomic.Bool

	// tail is the rest of the train whose first frame melody writes next
	// (client.TrainSink): written right after that frame. train is its
	// frame count and size for the sent hook.
	tail       []byte
	trainN     int
	trainBytes int
	// late counts the frames taken from the client's queue when their
	// train's first frame was written (client.TakeQueued), for the sent
	// hook; lateBytes their payload.
	late      int
	lateBytes int
	lateBuf   *[]byte // the buffer Buffer gave TakeQueued, on the writer only

	mu       sync.Mutex
	buf      *[]byte   // held back bytes; nil when none
	want     time.Time // the write deadline gorilla asked for
	deadline time.Time // the one set on the socket
	err      error
}

// Unwrapper is a connection wrapper whose writes and deadlines reach the
// connection it wraps unchanged (the gateway's guarded listener's): the
// transport writes to that one (a TLS connection is not one).
type Unwrapper interface {
	Unwrap() net.Conn
}

// unwrap is the connection under c's transparent wrappers.
func unwrap(c net.Conn) net.Conn {
	for {
		u, ok := c.(Unwrapper)
		if !ok {
			return c
		}
		c = u.Unwrap()
	}
}

// out is where the connection's writes go.
func (k *conn) out() net.Conn {
	if k.raw != nil {
		return k.raw
	}
	return k.Conn
}

// dropTrain forgets the train whose first frame melody dropped (its
// buffer full): its tail must not follow another frame.
func (k *conn) dropTrain() {
	k.mu.Lock()
	k.tail, k.trainN = nil, 0
	k.mu.Unlock()
}

// sentTrain returns the frame count and size of what melody reports
// written: a train's, or one frame of n bytes.
func (k *conn) sentTrain(n int) (frames, bytes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	frames, bytes = 1, n
	if k.trainN > 0 && k.tail == nil {
		frames, bytes = k.trainN, k.trainBytes
		k.trainN = 0
	}
	frames, bytes = frames+k.late, bytes+k.lateBytes
	k.late, k.lateBytes = 0, 0
	return frames, bytes
}

// handed counts a frame handed to melody; dropped takes it back.
func (k *conn) handed()  { k.queued.Add(1) }
func (k *conn) written() { k.queued.Add(-1) }

// SetWriteDeadline records the deadline; writes apply it.
func (k *conn) SetWriteDeadline(t time.Time) error {
	k.mu.Lock()
	k.want = t
	k.mu.Unlock()
	return nil
}

// SetDeadline sets both deadlines.
func (k *conn) SetDeadline(t time.Time) error {
	if err := k.SetWriteDeadline(t); err != nil {
		return err
	}
	return k.Conn.SetReadDeadline(t)
}

func (k *conn) Write(p []byte) (int, error) {
	// A control frame (gorilla's close reply, a pong) goes out at once with
	// what is held: after a close gorilla writes no more frames, so one
	// held back would never leave.
	control := isControl(p)
	late := k.takeLate(p, control)
	k.mu.Lock()
	defer k.mu.Unlock()
	if late != nil {
		defer putCork(late)
	}
	if k.err != nil {
		return 0, k.err
	}
	var tail []byte
	if !control {
		tail, k.tail = k.tail, nil
	}
	if tail != nil || late != nil {
		return k.writeTrain(p, tail, late)
	}
	more := k.queued.Load() > 1 && !control
	if k.buf != nil && len(*k.buf)+len(p) > corkBytes {
		if err := k.flushLocked(); err != nil {
			return 0, err
		}
	}
	if more && len(p) < corkBytes {
		if k.buf == nil {
			k.buf = corkPool.Get().(*[]byte)
		}
		*k.buf = append(*k.buf, p...)
		return len(p), nil
	}
	if k.buf != nil {
		*k.buf = append(*k.buf, p...)
		if err := k.flushLocked(); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := k.applyDeadline(); err != nil {
		return 0, err
	}
	n, err := k.out().Write(p)
	if err != nil {
		k.err = err
	}
	return n, err
}

// takeLate takes, for a whole data frame p that is written at once (not
// held back), the frames its client queued since it was handed
// (client.TakeQueued): they go out in the same system call, so that a
// writer that waited for the CPU writes everything that waits for its
// client once (nil: none). It runs before k.mu is taken: the client's
// lock comes first (SendTrain holds it and takes k.mu).
func (k *conn) takeLate(p []byte, control bool) *[]byte {
	if k.c == nil || control || !wholeDataFrame(p) || k.queued.Load() > 1 {
		return nil
	}
	k.mu.Lock()
	room := corkBytes - len(p) - len(k.tail)
	k.mu.Unlock()
	if room <= 0 {
		return nil
	}
	buf, n, size := k.c.TakeQueued(k, room)
	b := k.lateBuf
	k.lateBuf = nil
	if n == 0 {
		if b != nil {
			putCork(b)
		}
		return nil
	}
	*b = buf
	k.mu.Lock()
	k.late, k.lateBytes = k.late+n, k.lateBytes+size
	k.mu.Unlock()
	return b
}

// Buffer is a pooled buffer for client.TakeQueued (client.Buffers); it
// is only ever asked for by takeLate, on the connection's writer.
func (k *conn) Buffer() []byte {
	k.lateBuf = corkPool.Get().(*[]byte)
	return (*k.lateBuf)[:0]
}

func putCork(b *[]byte) {
	*b = (*b)[:0]
	corkPool.Put(b)
}

// wholeDataFrame reports whether p is exactly one final, unmasked text or
// binary frame, as gorilla writes a frame that fits its buffer: frames
// may follow it on the wire (not after part of a frame, or a fragment).
func wholeDataFrame(p []byte) bool {
	if len(p) < 2 || p[0]&0x80 == 0 || (p[0]&0x0F != 1 && p[0]&0x0F != 2) || p[1]&0x80 != 0 {
		return false
	}
	n, h := uint64(p[1]&0x7F), 2
	switch n {
	case 126:
		if len(p) < 4 {
			return false
		}
		n, h = uint64(p[2])<<8|uint64(p[3]), 4
	case 127:
		if len(p) < 10 {
			return false
		}
		n = 0
		for _, c := range p[2:10] {
			n = n<<8 | uint64(c)
		}
		h = 10
	}
	return uint64(len(p)-h) == n
}

// writeTrain writes a train's first frame (as gorilla framed it) and the
// frames after it (tail, those handed with it; late, those taken when it
// was written), with what is held back, in one system call. k.mu is held.
func (k *conn) writeTrain(p, tail []byte, late *[]byte) (int, error) {
	if err := k.applyDeadline(); err != nil {
		return 0, err
	}
	bufs := make(net.Buffers, 0, 4)
	if k.buf != nil {
		bufs = append(bufs, *k.buf)
	}
	bufs = append(bufs, p)
	if tail != nil {
		bufs = append(bufs, tail)
	}
	if late != nil {
		bufs = append(bufs, *late)
	}
	_, err := bufs.WriteTo(k.out())
	if k.buf != nil {
		*k.buf = (*k.buf)[:0]
		corkPool.Put(k.buf)
		k.buf = nil
	}
	if err != nil {
		k.err = err
		return 0, err
	}
	return len(p), nil
}

// flushLocked writes what is held back. k.mu is held.
func (k *conn) flushLocked() error {
	b := k.buf
	k.buf = nil
	defer func() {
		*b = (*b)[:0]
		corkPool.Put(b)
	}()
	if err := k.applyDeadline(); err != nil {
		return err
	}
	if _, err := k.out().Write(*b); err != nil {
		k.err = err
		return err
	}
	return nil
}

func (k *conn) applyDeadline() error {
	w, d := k.want, k.deadline
	if w.IsZero() == d.IsZero() && w.Sub(d).Abs() <= deadlineSlack {
		return nil
	}
	if err := k.Conn.SetWriteDeadline(w); err != nil {
		k.err = err
		return err
	}
	k.deadline = w
	return nil
}

// Close closes the connection at once, also under a write that is stuck
// (an abort); what is held back is dropped.
func (k *conn) Close() error { return k.Conn.Close() }

// detached is the response writer melody upgrades a connection that was
// hijacked from net/http already: its Hijack hands over the wrapped
// connection (with empty buffers: gorilla reads through its own small
// reader and writes through melody's pool), and the rare refusal gorilla
// may still write (the request was checked first, see upgradable) goes
// straight to the connection.
type detached struct {
	k      *conn
	header http.Header
	status int
}

func (d *detached) Header() http.Header { return d.header }

func (d *detached) WriteHeader(code int) {
	if d.status != 0 {
		return
	}
	d.status = code
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", code, http.StatusText(code))
	_ = d.header.Write(&b)
	b.WriteString("Connection: close\r\n\r\n")
	_, _ = d.k.Conn.Write([]byte(b.String()))
}

func (d *detached) Write(p []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	return d.k.Conn.Write(p)
}

func (d *detached) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return d.k, bufio.NewReadWriter(bufio.NewReaderSize(d.k, 16), bufio.NewWriterSize(d.k, 16)), nil
}

// upgradable reports whether gorilla will upgrade r (what it checks
// before hijacking, bar the origin, which admission checked).
func upgradable(r *http.Request) bool {
	return r.Method == http.MethodGet && websocket.IsWebSocketUpgrade(r) &&
		hasToken(r.Header, "Sec-Websocket-Version", "13") && r.Header.Get("Sec-Websocket-Key") != ""
}

// hasToken reports whether the comma-separated lists of header name hold
// token (case-insensitive), as gorilla reads them.
func hasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for _, t := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// unhijackable hides the Hijack of a response writer: gorilla answers a
// request it refuses through it (400, 405, 426…) but cannot take its
// connection, which serve alone does (every session's connection is a
// *conn).
type unhijackable struct{ http.ResponseWriter }

// isControl reports whether p is one whole unmasked control frame (close,
// ping, pong), as gorilla writes one: FIN and an opcode of 8 or more, and a
// payload of at most 125 bytes filling the rest of p. A data frame's write
// that happens to look like one is only written at once instead of held.
func isControl(p []byte) bool {
	return len(p) >= 2 && p[0]&0x80 != 0 && p[0]&0x0F >= 8 && p[1]&0x80 == 0 && int(p[1]) == len(p)-2
}
