package server

import (
	"net"
	"testing"
)

// TestGuardedConnUnwraps: an accepted connection unwraps to the socket
// (ws.Unwrapper), so that the transport writes trains with one writev.
func TestGuardedConnUnwraps(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := Guard(ln, 4, nil)
	defer g.Close()
	dialed := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			defer c.Close()
		}
		dialed <- err
	}()
	c, err := g.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	u, ok := c.(interface{ Unwrap() net.Conn })
	if !ok {
		t.Fatalf("accepted %T has no Unwrap", c)
	}
	if _, ok := u.Unwrap().(*net.TCPConn); !ok {
		t.Fatalf("Unwrap gave %T, want *net.TCPConn", u.Unwrap())
	}
}
