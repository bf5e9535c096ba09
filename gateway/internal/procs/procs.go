// Package procs runs the child processes of the gateway's command-line
// harnesses (cmd/fanbench, cmd/scaledemo): Start watches a process whose
// output goes to a log file, Child.Stop ends it by its pid, CPU reads the
// CPU time it used, FreeAddr finds a port to give it and Waiter.WaitOK
// waits for its HTTP endpoint to answer 200. Linux only (/proc).
package procs

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Child is a started process, watched until it ends.
type Child struct {
	Name string    // for messages
	Log  string    // path of the file its output goes to
	Cmd  *exec.Cmd // the started command
	done chan struct{}
	err  error
}

// Start starts cmd, whose output the caller has sent to the file at
// logPath; log (that file, or nil) is closed when the process has ended,
// or at once if it does not start. The error is cmd.Start's, for the
// caller to wrap.
func Start(name, logPath string, cmd *exec.Cmd, log io.Closer) (*Child, error) {
	if err := cmd.Start(); err != nil {
		if log != nil {
			_ = log.Close()
		}
		return nil, err
	}
	c := &Child{Name: name, Log: logPath, Cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		if log != nil {
			_ = log.Close()
		}
		close(c.done)
	}()
	return c, nil
}

// Pid is the process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Done is closed when the process has ended.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is how the process ended (cmd.Wait's error); valid once Done is
// closed.
func (c *Child) Err() error { return c.err }

// Exited reports whether the process has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends sig to the process, unless c is nil or the process has
// ended, and waits for it as Wait does.
func (c *Child) Stop(sig syscall.Signal, grace time.Duration) {
	if c == nil || c.Exited() {
		return
	}
	_ = c.Cmd.Process.Signal(sig)
	c.Wait(grace)
}

// Wait waits up to grace for the process to end, then kills it (SIGKILL)
// and waits for that.
func (c *Child) Wait(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.Cmd.Process.Kill()
		<-c.done
	}
}

// Tail is the last n lines of the process's log, for error messages.
func (c *Child) Tail(n int) string {
	b, _ := os.ReadFile(c.Log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// CPU is the user+system CPU time process pid has used so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms).
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces) start
	// after the last ')'; utime and stime are fields 14 and 15.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat utime: %w", pid, err)
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat stime: %w", pid, err)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz, nil
}

// FreeAddr is a TCP address on ip with a port that was free a moment ago.
// The error is net.Listen's (it names the address).
func FreeAddr(ip string) (*net.TCPAddr, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr), nil
}

// Waiter polls an HTTP endpoint until it answers 200.
type Waiter struct {
	Client   *http.Client  // for each try; its Timeout bounds one try
	Interval time.Duration // between tries
}

// WaitOK polls url until it answers 200, c (when not nil) exits, ctx ends
// or timeout passes.
func (w Waiter) WaitOK(ctx context.Context, url string, timeout time.Duration, c *Child) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if c != nil && c.Exited() {
			return fmt.Errorf("%s exited (%v; log %s):\n%s", c.Name, c.err, c.Log, c.Tail(15))
		}
		code, body, err := w.get(ctx, url)
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", code, strings.TrimSpace(body), err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", url, ctx.Err())
		case <-time.After(w.Interval):
		}
	}
	return fmt.Errorf("%s not ready after %v: %s", url, timeout, last)
}

func (w Waiter) get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, string(b), err
}
