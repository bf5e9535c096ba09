package testkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
