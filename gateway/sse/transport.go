package sse

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/dockcast/dockcast/gateway/client"
)

// Options tune the transport; zero values take the defaults.
type Options struct {
	// KeepAlive is how often an idle stream gets a comment line (default
	// KeepAlive, 15 s).
	KeepAlive time.Duration
	// WriteTimeout bounds each write and flush (default 10 s).
	WriteTimeout time.Duration
	// Credits is how many frames a client may hand the transport at once
	// (default 30).
	Credits int
}

// Defaults fills zero fields.
func (o Options) Defaults() Options {
	if o.KeepAlive <= 0 {
		o.KeepAlive = KeepAlive
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Credits <= 0 {
		o.Credits = 30
	}
	return o
}

// Hooks are called for every stream.
type Hooks struct {
	// Connected runs once the client's sink is attached: start feeding it.
	Connected func(c *client.Client)
	// Disconnected runs when the stream is gone.
	Disconnected func(c *client.Client)
	// Written runs after each write, with the frames and bytes it carried.
	Written func(frames, bytes int)
}

// Transport serves clients as Server-Sent Events: each server frame one
// message (see FrameID for the ids), written by the request's own
// goroutine, with a comment line after KeepAlive without a write.
type Transport struct {
	log   *slog.Logger
	opts  Options
	hooks Hooks
}

// NewTransport makes the transport.
func NewTransport(log *slog.Logger, o Options, hooks Hooks) *Transport {
	return &Transport{log: log.With("component", "sse"), opts: o.Defaults(), hooks: hooks}
}

// Credits is how many frames a client may hand the transport at once.
func (t *Transport) Credits() int { return t.opts.Credits }

// Serve streams c on the response until c ends (its error frame, then
// the end of the response), the client goes away, or the server's
// context ends. It returns after Disconnected ran.
func (t *Transport) Serve(w http.ResponseWriter, r *http.Request, c *client.Client) error {
	wr := NewWriter(w)
	wr.WriteTimeout = t.opts.WriteTimeout
	// The server's read timeout would end the request's context (its
	// background read fails) in the middle of a long stream.
	if err := http.NewResponseController(w).SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("sse: clear read deadline: %w", err)
	}
	k := client.NewChanSink(t.opts.Credits)
	defer func() {
		c.Disconnected()
		if t.hooks.Disconnected != nil {
			t.hooks.Disconnected(c)
		}
	}()
	// The headers and a first comment at once: a client learns it is
	// admitted before any frame.
	_ = wr.Comment("dockcast")
	if err := wr.Flush(); err != nil {
		return err
	}
	c.Attach(k)
	if t.hooks.Connected != nil {
		t.hooks.Connected(c)
	}
	ka := time.NewTimer(t.opts.KeepAlive)
	defer ka.Stop()
	for {
		select {
		case f := <-k.Frames:
			n := 1
			t.append(wr, c, f)
		more:
			for {
				select {
				case f := <-k.Frames:
					n++
					t.append(wr, c, f)
				default:
					break more
				}
			}
			size := wr.Buffered()
			if err := wr.Flush(); err != nil {
				t.log.Debug("sse client gone", "remote", r.RemoteAddr, "err", err)
				return nil
			}
			if t.hooks.Written != nil {
				t.hooks.Written(n, size)
			}
			for range n {
				c.Sent()
			}
			ka.Reset(t.opts.KeepAlive)
		case <-k.Closed():
			// Frames handed before the close are written first.
			for {
				select {
				case f := <-k.Frames:
					t.append(wr, c, f)
					continue
				default:
				}
				break
			}
			_ = wr.Flush()
			return nil
		case <-k.Aborted():
			return nil
		case <-ka.C:
			_ = wr.Comment("keep-alive")
			if err := wr.Flush(); err != nil {
				return nil
			}
			ka.Reset(t.opts.KeepAlive)
		case <-r.Context().Done():
			return nil
		}
	}
}

// frameHead is what the SSE fields need of a frame.
type frameHead struct {
	Type  string `json:"type"`
	Seq   uint64 `json:"seq"`
	Code  string `json:"code"`
	Epoch string `json:"epoch"`
}

// append adds one frame as a message: event: its type, id: see FrameID.
func (t *Transport) append(wr *Writer, c *client.Client, f []byte) {
	var h frameHead
	if err := json.Unmarshal(f, &h); err != nil {
		t.log.Error("frame not sent: not JSON", "err", err)
		return
	}
	epoch := h.Epoch // live frames name it, and stream_reset the new one
	if epoch == "" {
		epoch = c.Epoch()
	}
	m := Message{Event: h.Type, Data: f, ID: FrameID(h.Type, h.Code, epoch, h.Seq)}
	if err := wr.Append(m); err != nil {
		t.log.Error("frame not sent", "type", h.Type, "err", err)
	}
}
