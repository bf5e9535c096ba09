package testkit

import (
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Proxy forwards connections from its own listener to a target and lets a
// test break the link on purpose: Cut closes every connection and refuses
// new ones (a WAN outage, or a daemon restart as a client sees it), Restore
// accepts again, and DropReplies discards what the target sends while still
// forwarding what the client sends (a link that loses the server's
// acknowledgements: the server keeps storing what it receives, the client
// never hears back). Silence loses everything both ways and closes nothing
// (a cable pulled, a NAT mapping gone: only timeouts tell).
type Proxy struct {
	// Addr is where clients connect: host:port (TCP) or a socket path (unix).
	Addr            string
	dialNet, target string
	ln              net.Listener

	mu      sync.Mutex
	cut     bool
	drop    bool
	silent  bool
	held    []net.Conn // accepted while silent: never forwarded
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	accepts int
}

// TCPProxy is a Proxy on a loopback TCP port.
type TCPProxy = Proxy

// DockerProxy is a Proxy on a unix socket in front of the Docker socket.
type DockerProxy struct {
	*Proxy
	Path string // the proxy's socket: use DOCKER_HOST=unix://<Path>
}

// Host is the DOCKER_HOST value that points at the proxy.
func (p *DockerProxy) Host() string { return "unix://" + p.Path }

// StartTCPProxy listens on a free 127.0.0.1 port and forwards to target
// (host:port). It is closed when the test ends.
func StartTCPProxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	return startProxy(t, "tcp", "127.0.0.1:0", "tcp", target)
}

// StartDockerProxy starts a proxy to target (a unix socket path, usually
// /var/run/docker.sock), stopped when the test ends.
func StartDockerProxy(t testing.TB, target string) *DockerProxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	return &DockerProxy{Proxy: startProxy(t, "unix", path, "unix", target), Path: path}
}

func startProxy(t testing.TB, listenNet, listenAddr, dialNet, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen(listenNet, listenAddr)
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), dialNet: dialNet, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.accepts++
		cut, silent := p.cut, p.silent
		if silent {
			p.held = append(p.held, c)
		}
		p.mu.Unlock()
		if silent {
			continue // the handshake goes unanswered
		}
		if cut {
			_ = c.Close()
			continue
		}
		up, err := net.Dial(p.dialNet, p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut { // cut while dialling
			p.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(up, c, false) // client -> target
		go p.pipe(c, up, true)  // target -> client: the replies
	}
}

func (p *Proxy) pipe(dst, src net.Conn, replies bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := replies && p.drop || p.silent
			p.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
		}
		if err != nil { // EOF, a reset, or Cut: close both sides
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore accepts connections again and forwards replies again, and
// after Silence forwards both ways again; connections accepted while
// silent, never forwarded, are closed.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut, p.drop, p.silent = false, false, false
	p.mu.Unlock()
	p.closeHeld()
}

func (p *Proxy) closeHeld() {
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		_ = c.Close()
	}
}

// Silence discards everything sent either way on the open connections,
// closing none, and holds new ones unanswered, until Restore.
func (p *Proxy) Silence() {
	p.mu.Lock()
	p.silent = true
	p.mu.Unlock()
}

// DropReplies starts (true) or stops (false) discarding everything the
// target sends on the open connections; what clients send still arrives.
func (p *Proxy) DropReplies(on bool) {
	p.mu.Lock()
	p.drop = on
	p.mu.Unlock()
}

// Conns is the number of client connections being forwarded now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Accepts is the number of connections accepted so far (refused ones too).
func (p *Proxy) Accepts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.closeHeld()
	p.wg.Wait()
}
