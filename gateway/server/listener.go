package server

import (
	"container/list"
	"context"
	"net"
	"net/http"
	"sync"
)

// GuardedListener bounds the connections that have not yet sent a
// complete request header (in the TCP/HTTP handshake): past Max, the
// oldest of them is closed, so that clients that open connections and
// send nothing (or trickle a header) cannot take every connection the
// process can hold, and cannot lock out new clients either. An
// http.Server using it must set ConnContext to Guard's and serve
// through a Server (which marks each connection's first request).
type GuardedListener struct {
	net.Listener
	max     int
	onEvict func()

	mu      sync.Mutex
	pending list.List // *guardedConn, oldest first
}

// Guard wraps ln; onEvict, optional, is called for each connection closed
// to make room.
func Guard(ln net.Listener, max int, onEvict func()) *GuardedListener {
	if max < 1 {
		max = 1024
	}
	return &GuardedListener{Listener: ln, max: max, onEvict: onEvict}
}

// Accept accepts a connection and counts it as pending until its first
// request header is read.
func (l *GuardedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &guardedConn{Conn: c, l: l}
	var evict *guardedConn
	l.mu.Lock()
	gc.elem = l.pending.PushBack(gc)
	if l.pending.Len() > l.max {
		front := l.pending.Front()
		evict = front.Value.(*guardedConn)
		l.pending.Remove(front)
		evict.elem = nil
	}
	l.mu.Unlock()
	if evict != nil {
		_ = evict.Conn.Close()
		if l.onEvict != nil {
			l.onEvict()
		}
	}
	return gc, nil
}

// Pending is the number of connections waiting for their first header.
func (l *GuardedListener) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending.Len()
}

type guardedConn struct {
	net.Conn
	l    *GuardedListener
	elem *list.Element // in l.pending while pending; guarded by l.mu
}

// admitted: the connection's first request header was read.
func (c *guardedConn) admitted() {
	c.l.mu.Lock()
	if c.elem != nil {
		c.l.pending.Remove(c.elem)
		c.elem = nil
	}
	c.l.mu.Unlock()
}

// Unwrap is the accepted connection (ws.Unwrapper: writes and deadlines
// pass through unchanged), so that the transport writes a train with one
// writev.
func (c *guardedConn) Unwrap() net.Conn { return c.Conn }

func (c *guardedConn) Close() error {
	c.admitted()
	return c.Conn.Close()
}

type connKey struct{}

// ConnContext is the http.Server ConnContext for a GuardedListener.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if gc, ok := c.(*guardedConn); ok {
		return context.WithValue(ctx, connKey{}, gc)
	}
	return ctx
}

// headerRead marks the request's connection as past its handshake.
func headerRead(r *http.Request) {
	if gc, ok := r.Context().Value(connKey{}).(*guardedConn); ok {
		gc.admitted()
	}
}
