package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"
)

// DockerCLI runs the machine's docker binary: as the machine runs it
// (NewDockerCLI), or pointed at another Docker API address with a
// DOCKER_CONFIG of its own (At).
type DockerCLI struct {
	t   testing.TB
	bin string
	env []string
}

// NewDockerCLI finds the docker binary; the test fails without one.
func NewDockerCLI(t testing.TB) DockerCLI {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("the docker CLI is needed (apt-get install docker.io): %v", err)
	}
	return DockerCLI{t: t, bin: bin, env: os.Environ()}
}

// At is the CLI pointed at addr (host:port, plain TCP), with a config
// directory of its own holding configJSON as config.json (if not empty),
// and none of the machine's DOCKER_* settings.
func (d DockerCLI) At(addr, configJSON string) DockerCLI {
	d.t.Helper()
	dir := d.t.TempDir()
	if configJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(configJSON), 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains([]string{"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_API_VERSION", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"}, k) {
			env = append(env, kv)
		}
	}
	d.env = append(env, "DOCKER_HOST=tcp://"+addr, "DOCKER_CONFIG="+dir)
	return d
}

// With is the CLI with more environment variables (KEY=value).
func (d DockerCLI) With(env ...string) DockerCLI {
	d.env = append(slices.Clone(d.env), env...)
	return d
}

// Command is the CLI with args, not started.
func (d DockerCLI) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = d.env
	return cmd
}

// Run runs the CLI with args (for at most 2 minutes) and returns its
// standard output; an error carries its standard error.
func (d DockerCLI) Run(args ...string) (string, error) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := d.Command(ctx, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// FiniteEvents reads, through the Go SDK, an /events answer that ends (an
// until in the past) within timeout: the messages, in order.
func FiniteEvents(cli *client.Client, opts events.ListOptions, timeout time.Duration) ([]events.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, errs := cli.Events(ctx, opts)
	var out []events.Message
	for {
		select {
		case m := <-msgs:
			out = append(out, m)
		case err := <-errs:
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("events %+v: %w", opts, err)
		}
	}
}

// LineDiff describes how got differs from want, line by line.
func LineDiff(got, want []string) string {
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)); i++ {
		g, w := "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "line %d:\n  got  %s\n  want %s\n", i+1, g, w)
		}
	}
	return fmt.Sprintf("%d lines, want %d\n%s", len(got), len(want), b.String())
}
