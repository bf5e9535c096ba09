package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dockcast/dockcast/gateway/internal/procs"
)

// child is a process the orchestrator started; it is ended by its pid.
type child struct{ *procs.Child }

// startChild runs bin with args and env (added to the orchestrator's), its
// output going to logDir/name.log. The child is killed if the orchestrator
// dies.
func startChild(name, logDir, bin string, args, env []string) (*child, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c, err := procs.Start(name, logPath, cmd, f)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &child{c}, nil
}

// pid of the process.
func (c *child) pid() int { return c.Pid() }

// exited reports whether the process has ended.
func (c *child) exited() bool { return c.Exited() }

// stop sends SIGTERM and waits (SIGKILL after 15 s).
func (c *child) stop() {
	if c == nil {
		return
	}
	c.Stop(syscall.SIGTERM, 15*time.Second)
}

// tail is the end of the child's log, for error messages.
func (c *child) tail() string { return c.Tail(15) }

// rssBytes is the resident set size of a process, from /proc.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

// cpuSeconds is the CPU time (user + system) a process has used, from
// /proc (clock ticks of 10 ms); 0 when it cannot be read.
func cpuSeconds(pid int) float64 {
	d, err := procs.CPU(pid)
	if err != nil {
		return 0
	}
	return float64(d) / float64(time.Second)
}

// cpuMeter reads the CPU time of the processes of a measurement.
type cpuMeter struct {
	pids  [3]int // server, nats-server (0 when it is the server), clients
	start [3]float64
}

func startCPU(server, nats, clients int) *cpuMeter {
	m := &cpuMeter{pids: [3]int{server, nats, clients}}
	if nats == server {
		m.pids[1] = 0
	}
	for i, p := range m.pids {
		if p > 0 {
			m.start[i] = cpuSeconds(p)
		}
	}
	return m
}

// cpuUse is the CPU seconds each process used during a measurement.
type cpuUse struct {
	Server, NATS, Clients float64
	HasNATS               bool // nats-server is a separate process from the server
}

func (m *cpuMeter) stop() cpuUse {
	var d [3]float64
	for i, p := range m.pids {
		if p > 0 {
			d[i] = cpuSeconds(p) - m.start[i]
		}
	}
	return cpuUse{Server: d[0], NATS: d[1], Clients: d[2], HasNATS: m.pids[1] > 0}
}

// threads is the number of OS threads of a process.
func threads(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}

// freePort is a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	a, err := procs.FreeAddr("127.0.0.1")
	if err != nil {
		return 0, err
	}
	return a.Port, nil
}

// waitHTTP polls url until it answers 200, the child exits or d passes.
func waitHTTP(ctx context.Context, c *child, url string, d time.Duration) error {
	var pc *procs.Child
	if c != nil {
		pc = c.Child
	}
	return procs.Waiter{Client: httpClient, Interval: 50 * time.Millisecond}.WaitOK(ctx, url, d, pc)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func getJSON(ctx context.Context, url string, v any) error {
	code, body, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, code, truncate(body, 200))
	}
	return json.Unmarshal([]byte(body), v)
}

// clientRun is a client process: its stdin takes commands, its stdout
// gives ready and result lines.
type clientRun struct {
	*child
	in  io.WriteCloser
	out *bufio.Scanner
}

// startClients starts a client process with f and waits for its ready line.
func (o *orchestrator) startClients(ctx context.Context, name string, f clientFlags) (*clientRun, readyMsg, error) {
	args := []string{"client", "-proto", f.proto, "-url", f.url, "-n", strconv.Itoa(f.clients),
		"-dial", strconv.Itoa(f.dial), "-expect", strconv.Itoa(f.expect), "-subject", f.subject, "-channel", f.channel}
	logPath := filepath.Join(o.dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, readyMsg{}, err
	}
	cmd := exec.Command(o.self, args...)
	cmd.Stderr = lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, readyMsg{}, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, readyMsg{}, err
	}
	pc, err := procs.Start(name, logPath, cmd, lf)
	if err != nil {
		return nil, readyMsg{}, fmt.Errorf("start clients: %w", err)
	}
	c := &clientRun{child: &child{pc}, in: in, out: bufio.NewScanner(out)}
	c.out.Buffer(make([]byte, 64<<10), 1<<20)
	var m readyMsg
	if err := c.next(&m); err != nil {
		c.stop()
		return nil, m, err
	}
	return c, m, nil
}

// next reads the process's next line into v.
func (c *clientRun) next(v any) error {
	if !c.out.Scan() {
		<-c.Done()
		return fmt.Errorf("client process ended (%v): %s", c.Err(), c.tail())
	}
	return json.Unmarshal(c.out.Bytes(), v)
}

// wait asks the process for its result once every client has its events.
func (c *clientRun) wait(timeout time.Duration) (resultMsg, error) {
	var r resultMsg
	if err := json.NewEncoder(c.in).Encode(command{Cmd: "wait", Timeout: int64(timeout)}); err != nil {
		return r, err
	}
	return r, c.next(&r)
}

// stop ends the process: quit, then its pid.
func (c *clientRun) stop() {
	if c == nil {
		return
	}
	_ = json.NewEncoder(c.in).Encode(command{Cmd: "quit"})
	_ = c.in.Close()
	c.Wait(20 * time.Second)
}
