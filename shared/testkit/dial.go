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
