package testkit

import (
	"bufio"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one of the repository's binaries (bin/<name>) run as a child
// process, which a test can stop with any signal and start again with the
// same arguments and environment. Its output goes to a file whose tail is
// logged when the test fails; it is killed when the test ends.
type Process struct {
	t    testing.TB
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess starts bin/<name> with args and the test's environment plus
// env ("KEY=value", overriding).
func StartProcess(t testing.TB, name string, args []string, env ...string) *Process {
	t.Helper()
	p := &Process{t: t, name: name, bin: Binary(t, name), args: args, env: env,
		log: filepath.Join(t.TempDir(), name+".log")}
	p.Start()
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("--- tail of %s output:\n%s", name, tail(p.log, 60))
		}
	})
	return p
}

// Start starts the process (again).
func (p *Process) Start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// Running reports whether the process has been started and not stopped.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid is the running process's id (0 when it is not running).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends sig to the process, waits for it to exit (SIGKILL after 20 s)
// and returns its exit code (-1 when a signal ended it, or when it was not
// running).
func (p *Process) Stop(sig syscall.Signal) int {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return -1
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return cmd.ProcessState.ExitCode()
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePorts are the ports FreeAddr handed out in this process.
var freePorts struct {
	sync.Mutex
	given map[int]bool
}

// Free ports are chosen from freeLow to freeHigh-1: below Linux's
// ephemeral range (32768-60999 by default), where every outgoing
// connection takes its local port. A port the kernel picked there for a
// listener of the moment could be taken by any connection before the
// process meant to listen on it starts ("address already in use": a
// nats-server of a test cluster died of it in CI).
const freeLow, freeHigh = 10000, 32768

// FreeAddr returns a loopback host:port that was free a moment ago and
// that no other call in this process returned.
func FreeAddr(t testing.TB) string {
	t.Helper()
	freePorts.Lock()
	defer freePorts.Unlock()
	if freePorts.given == nil {
		freePorts.given = map[int]bool{}
	}
	for range 1000 {
		port := freeLow + rand.IntN(freeHigh-freeLow)
		if freePorts.given[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = l.Close()
		freePorts.given[port] = true
		return addr
	}
	t.Fatalf("no free port in %d-%d after 1000 tries", freeLow, freeHigh-1)
	return ""
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	addr, err := net.ResolveTCPAddr("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return addr.Port
}
