package ws

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/olahol/melody"

	"github.com/dockcast/dockcast/gateway/client"
)

// Subprotocol is the WebSocket subprotocol of dockcast's frames. A client
// that lists it (browsers pass the token beside it, as
// dockcast.token.<base64url>) gets it as the answer.
const Subprotocol = "dockcast.v1"

// Options tune the transport; zero values take the defaults.
type Options struct {
	WriteWait  time.Duration // deadline of every write (default 10s)
	PongWait   time.Duration // a client silent this long is dropped (default 60s)
	PingPeriod time.Duration // ping interval (default 9/10 of PongWait)
	// MaxMessageSize is the largest frame a client may send (default 4096).
	MaxMessageSize int64
	// Buffer is melody's MessageBufferSize (default 4, the least): its
	// channel is held by every connection, idle or not (40 bytes a slot).
	// A client hands it one frame or train at a time (client.TrainSink),
	// besides the two slots kept for the closing error frame and the
	// close; its Credits are Buffer-2 (Transport.Credits).
	Buffer int
}

// Defaults fills zero fields.
func (o Options) Defaults() Options {
	if o.WriteWait <= 0 {
		o.WriteWait = 10 * time.Second
	}
	if o.PongWait <= 0 {
		o.PongWait = 60 * time.Second
	}
	if o.PingPeriod <= 0 || o.PingPeriod >= o.PongWait {
		o.PingPeriod = o.PongWait * 9 / 10
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 4096
	}
	if o.Buffer < 4 {
		o.Buffer = 4
	}
	return o
}

// Hooks are called for every connection.
type Hooks struct {
	// Connected runs once the client's sink is attached: start feeding it.
	Connected func(c *client.Client)
	// Disconnected runs when the connection is gone.
	Disconnected func(c *client.Client)
	// Written runs after frames are written (several for a train), with
	// their count and size.
	Written func(frames, bytes int)
}

// Transport serves WebSocket connections with melody.
type Transport struct {
	log   *slog.Logger
	opts  Options
	hooks Hooks
	m     *melody.Melody
}

// readBufferSize is gorilla's read buffer per connection: the smallest it
// accepts, one control frame's payload.
const readBufferSize = 125

// New makes the transport.
func New(log *slog.Logger, o Options, hooks Hooks) *Transport {
	o = o.Defaults()
	t := &Transport{log: log.With("component", "ws"), opts: o, hooks: hooks}
	m := melody.New()
	m.Config.WriteWait = o.WriteWait
	m.Config.PongWait = o.PongWait
	m.Config.PingPeriod = o.PingPeriod
	m.Config.MaxMessageSize = o.MaxMessageSize
	m.Config.MessageBufferSize = o.Buffer
	m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // admission checked the origin
	m.Upgrader.Subprotocols = []string{Subprotocol}
	m.Upgrader.WriteBufferPool = &sync.Pool{}
	// Pooled (only a connection being written holds one): a batched
	// frame fits whole, so that it goes out in one write.
	m.Upgrader.WriteBufferSize = client.MaxBatchBytes + 1024
	// Frames from clients are small (MaxMessageSize), and the buffer is
	// held by every idle connection: the smallest gorilla accepts (a
	// control frame's payload), larger frames are read through it.
	m.Upgrader.ReadBufferSize = readBufferSize
	m.HandleConnect(func(s *melody.Session) {
		// The request (its header, URL, context) would live as long as
		// the connection: nothing reads it after the upgrade.
		s.Request = nil
		k := sessionConn(s)
		k.c.Attach(sink{s, k})
		if hooks.Connected != nil {
			hooks.Connected(k.c)
		}
	})
	m.HandleDisconnect(func(s *melody.Session) {
		c := sessionConn(s).c
		c.Disconnected()
		if hooks.Disconnected != nil {
			hooks.Disconnected(c)
		}
	})
	m.HandleSentMessage(func(s *melody.Session, msg []byte) {
		k := sessionConn(s)
		frames, bytes := k.sentTrain(len(msg))
		k.written()
		k.c.Written(msg)
		if hooks.Written != nil {
			hooks.Written(frames, bytes)
		}
	})
	m.HandleError(func(s *melody.Session, err error) {
		k := sessionConn(s)
		if errors.Is(err, melody.ErrMessageBufferFull) {
			if k.sending.Load() {
				k.written() // never will be
				k.dropTrain()
			}
			t.log.Error("melody buffer full: a frame was dropped", "remote", k.RemoteAddr().String())
			return
		}
		t.log.Debug("websocket", "remote", k.RemoteAddr().String(), "err", err)
	})
	t.m = m
	return t
}

// Credits is how many frames a client may hand melody at once.
func (t *Transport) Credits() int { return t.opts.Buffer - 2 }

// Serve upgrades the request and serves c on it. It returns at once: the
// connection is taken from net/http (whose buffers, request state and
// goroutine an idle connection would otherwise keep: most of its memory)
// and served on a goroutine of its own; ended is called once, when the
// connection is over (or could not be upgraded: then the error is
// returned, or logged when it comes later).
func (t *Transport) Serve(w http.ResponseWriter, r *http.Request, c *client.Client, ended func()) error {
	hj, ok := w.(http.Hijacker)
	if !ok || !upgradable(r) {
		// gorilla answers what it cannot upgrade (400, 426…).
		defer ended()
		return t.m.HandleRequest(unhijackable{w}, r)
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		ended()
		return fmt.Errorf("hijack: %w", err)
	}
	if brw.Reader.Buffered() > 0 {
		_ = nc.Close()
		ended()
		return errors.New("the client sent data before the handshake completed")
	}
	go t.serve(r, &conn{Conn: nc, raw: unwrap(nc), c: c}, ended)
	return nil
}

// serve upgrades r on the hijacked connection k and serves it: melody
// runs its read pump on this goroutine for as long as the connection
// lasts, so r must not be used after the call: it would stay reachable
// from the goroutine's stack.
func (t *Transport) serve(r *http.Request, k *conn, ended func()) {
	defer ended()
	d := &detached{k: k, header: http.Header{}}
	if err := t.m.HandleRequest(d, r); err != nil {
		_ = k.Conn.Close()
		t.log.Debug("websocket upgrade", "remote", k.RemoteAddr().String(), "err", err)
	}
}

// Abort closes every connection at once (a shutdown past its deadline).
func (t *Transport) Abort() {
	if sessions, err := t.m.Sessions(); err == nil {
		for _, s := range sessions {
			_ = s.WebsocketConnection().Close()
		}
	}
}

// sessionConn is the connection under s, which knows its client: every
// session is made by serve on a *conn (without keys: a session's map of
// keys would be a few hundred bytes per connection).
func sessionConn(s *melody.Session) *conn { return s.WebsocketConnection().UnderlyingConn().(*conn) }

// sink is a melody session as a client's Sink.
type sink struct {
	s *melody.Session
	k *conn
}

func (k sink) Send(frame []byte) error {
	k.k.handed()
	k.k.sending.Store(true)
	err := k.s.Write(frame)
	k.k.sending.Store(false)
	if err != nil {
		k.k.written() // never will be
	}
	return err
}

// SendTrain hands melody the train's first frame; the connection writes
// the rest right after it (client.TrainSink). The client hands one train
// at a time, so at most one tail waits.
func (k sink) SendTrain(first, rest []byte, n, size int) error {
	k.k.mu.Lock()
	k.k.tail, k.k.trainN, k.k.trainBytes = rest, n, size
	k.k.mu.Unlock()
	err := k.Send(first)
	if err != nil {
		k.k.dropTrain()
	}
	return err
}

func (k sink) Close(code int, reason string) error {
	return k.s.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}

func (k sink) Abort() { _ = k.s.WebsocketConnection().Close() }
