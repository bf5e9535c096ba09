package testkit

import (
	"net"
	"syscall"
)

// DialStalling dials with a 4 KiB receive buffer, for a client that reads
// slowly or not at all: its socket fills at once, so that the server's
// queue for it grows (slow-consumer and back-pressure tests). Use it as a
// websocket.Dialer's NetDial.
func DialStalling(network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	return d.Dial(network, addr)
}

// SmallSendBuffers wraps a server's listener so that every connection it
// accepts has a 4 KiB send buffer: the kernel then holds almost nothing
// for a client that does not read (it would otherwise grow the buffer to
// megabytes), and the server's own queue for it fills at once.
func SmallSendBuffers(ln net.Listener) net.Listener { return smallSend{ln} }

type smallSend struct{ net.Listener }

func (l smallSend) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}
