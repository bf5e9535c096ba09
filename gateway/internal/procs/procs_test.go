package procs

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// startLogged starts bin with args, its output in a log file of a
// temporary directory; the process is killed when the test ends.
func startLogged(t *testing.T, bin string, args ...string) *Child {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "child.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	c, err := Start("child", logPath, cmd, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(syscall.SIGKILL, 10*time.Second) })
	return c
}

// waitEnded waits (at most 10 s) for c to end.
func waitEnded(t *testing.T, c *Child) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not end", c.Name)
	}
}

// starting is a server that answers every request 503 "starting".
func starting(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStartCPUStop(t *testing.T) {
	t.Parallel()
	c := startLogged(t, "sleep", "60")
	if c.Exited() {
		t.Fatalf("sleep exited at once: %v", c.Err())
	}
	d, err := CPU(c.Pid())
	if err != nil {
		t.Fatalf("CPU(%d): %v", c.Pid(), err)
	}
	if d < 0 || d > 10*time.Second {
		t.Errorf("CPU of a sleeping process = %v", d)
	}
	c.Stop(syscall.SIGTERM, 10*time.Second)
	if !c.Exited() {
		t.Fatal("Stop returned before the process ended")
	}
	var ee *exec.ExitError
	if !errors.As(c.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("Err() = %v, want ended by SIGTERM", c.Err())
	}
	if _, err := CPU(c.Pid()); err == nil {
		t.Error("CPU of an ended (reaped) process: no error")
	}
	c.Stop(syscall.SIGTERM, time.Second) // ended already: returns at once
	var nilChild *Child
	nilChild.Stop(syscall.SIGTERM, time.Second)
}

func TestCPUCountsBusyProcess(t *testing.T) {
	t.Parallel()
	d, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d2, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if d2 > d {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU stayed at %v for 10 s of spinning", d)
		}
		for range 1_000_000 {
			spin++
		}
	}
}

var spin int

func TestWaitKillsAfterGrace(t *testing.T) {
	t.Parallel()
	// The shell ignores SIGTERM, so only the SIGKILL after the grace ends it.
	c := startLogged(t, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.Tail(1), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("no ready line in the log: %q", c.Tail(5))
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Stop(syscall.SIGTERM, 200*time.Millisecond)
	var ee *exec.ExitError
	if !errors.As(c.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Err() = %v, want killed by SIGKILL", c.Err())
	}
}

func TestStartFailureClosesLog(t *testing.T) {
	t.Parallel()
	f, err := os.Create(filepath.Join(t.TempDir(), "x.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(t.TempDir(), "no-such-binary"))
	if _, err := Start("x", f.Name(), cmd, f); err == nil {
		t.Fatal("Start of a missing binary: no error")
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("log after a failed Start: write error %v, want closed", err)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	c := startLogged(t, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done")
	waitEnded(t, c)
	if got, want := c.Tail(2), "line4\nline5"; got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	a, err := FreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Port == 0 || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("FreeAddr = %v", a)
	}
	ln, err := net.Listen("tcp", a.String())
	if err != nil {
		t.Fatalf("listen on the free address %v: %v", a, err)
	}
	ln.Close()
}

func TestWaitOK(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	w := Waiter{Client: srv.Client(), Interval: 10 * time.Millisecond}
	if err := w.WaitOK(context.Background(), srv.URL, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d tries, want 3 (two 503s, then 200)", n)
	}
}

func TestWaitOKTimeout(t *testing.T) {
	t.Parallel()
	srv := starting(t)
	w := Waiter{Client: srv.Client(), Interval: 10 * time.Millisecond}
	err := w.WaitOK(context.Background(), srv.URL, 100*time.Millisecond, nil)
	if err == nil || !strings.Contains(err.Error(), "not ready") || !strings.Contains(err.Error(), "503 starting") {
		t.Fatalf("WaitOK on a 503 server = %v, want not ready with the last answer", err)
	}
}

func TestWaitOKContextEnds(t *testing.T) {
	t.Parallel()
	srv := starting(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := Waiter{Client: srv.Client(), Interval: 10 * time.Millisecond}
	if err := w.WaitOK(ctx, srv.URL, time.Minute, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitOK with an ended context = %v, want context.Canceled", err)
	}
}

func TestWaitOKChildExited(t *testing.T) {
	t.Parallel()
	c := startLogged(t, "sh", "-c", "echo boom; exit 3")
	waitEnded(t, c)
	// Nothing listens on the address: only the child's end can stop the wait early.
	a, err := FreeAddr("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	w := Waiter{Client: &http.Client{Timeout: time.Second}, Interval: 10 * time.Millisecond}
	err = w.WaitOK(context.Background(), "http://"+a.String()+"/readyz", time.Minute, c)
	if err == nil || !strings.Contains(err.Error(), "child exited") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("WaitOK for an exited child = %v, want exited with the log's tail", err)
	}
}
