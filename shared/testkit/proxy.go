package testkit

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// DockerProxy listens on a unix socket and pipes each connection to the
// real Docker socket. Cut closes every piped connection and refuses new
// ones (what a daemon restart looks like to a client); Restore accepts again.
type DockerProxy struct {
	Path   string // the proxy's socket: use DOCKER_HOST=unix://<Path>
	target string
	ln     net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartDockerProxy starts a proxy to target (a unix socket path, usually
// /var/run/docker.sock), stopped when the test ends.
func StartDockerProxy(t testing.TB, target string) *DockerProxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &DockerProxy{Path: path, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Host is the DOCKER_HOST value that points at the proxy.
func (p *DockerProxy) Host() string { return "unix://" + p.Path }

func (p *DockerProxy) accept() {
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
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("unix", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *DockerProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every open connection and refuses new ones until Restore.
func (p *DockerProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore accepts connections again.
func (p *DockerProxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *DockerProxy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
