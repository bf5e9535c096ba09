package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dockcast/dockcast/gateway/internal/procs"
)

// proc is one child process, its output in a log file.
type proc struct{ *procs.Child }

func startProc(dir, name, bin string, args []string, env []string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	c, err := procs.Start(name, logPath, cmd, f)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{c}, nil
}

// kill sends sig and waits (at most 30 s) for the process to end.
func (p *proc) kill(sig syscall.Signal) { p.Stop(sig, 30*time.Second) }

// cpu is the process's user+system CPU time so far (from /proc).
func (p *proc) cpu() (time.Duration, error) { return procs.CPU(p.Pid()) }

// freeAddr is ip:port with a port free on ip.
func freeAddr(ip string) (string, error) {
	a, err := procs.FreeAddr(ip)
	if err != nil {
		return "", fmt.Errorf("listen on %s (Linux routes all of 127.0.0.0/8 to loopback): %w", ip, err)
	}
	return a.String(), nil
}

// waitOK polls url until it answers 200, p exits, ctx ends or timeout
// passes.
func waitOK(ctx context.Context, url string, timeout time.Duration, p *proc) error {
	var c *procs.Child
	if p != nil {
		c = p.Child
	}
	return procs.Waiter{Client: &http.Client{Timeout: 2 * time.Second}, Interval: 200 * time.Millisecond}.WaitOK(ctx, url, timeout, c)
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run from the repository")
		}
		dir = parent
	}
}
