package testkit

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// ProbeImage is the tag of the test image built by EnsureProbeImage.
const ProbeImage = "dockcast-probe:test"

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// Docker returns a client for the engine in the environment (DOCKER_HOST or
// the local socket), with API version negotiation.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("the tests need a running Docker engine: %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

var probeOnce struct {
	sync.Mutex
	built bool
}

// EnsureProbeImage builds dockcast-probe:test, FROM scratch with the static
// probe binary, unless this process already did.
func EnsureProbeImage(t testing.TB, cli *client.Client) string {
	t.Helper()
	probeOnce.Lock()
	defer probeOnce.Unlock()
	if probeOnce.built {
		return ProbeImage
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "probe")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dockcast/dockcast/shared/testkit/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY probe /probe\nENTRYPOINT [\"/probe\"]\n")},
		{"probe", 0o755, data},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := ctxTimeout(2 * time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: []string{ProbeImage}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build %s: %v", ProbeImage, err)
	}
	out, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !bytes.Contains(out, []byte("Successfully tagged")) {
		t.Fatalf("build %s: %v\n%s", ProbeImage, err, out)
	}
	probeOnce.built = true
	return ProbeImage
}

// Probe describes a probe container for RunProbe.
type Probe struct {
	Name   string
	Labels map[string]string
	Args   []string // probe arguments, e.g. "sleep", "10s"
	// Health adds an exec-form health check (/probe health every second,
	// one retry): pair it with Args "healthy-for", "2s", "sleep", "30s".
	Health bool
	// HealthTest, if set, is the health check's Test instead
	// (["CMD-SHELL", "…"] runs through /bin/sh, which the image lacks: the
	// check's exec_create and exec_start happen, its exec_die does not).
	HealthTest []string
	// Start starts the container after creating it.
	Start bool
}

// RunProbe creates (and with p.Start starts) a container of the probe image
// with no network. It is removed, forcibly, when the test ends.
func RunProbe(t testing.TB, cli *client.Client, p Probe) string {
	t.Helper()
	EnsureProbeImage(t, cli)
	cfg := &container.Config{Image: ProbeImage, Cmd: p.Args, Labels: p.Labels}
	if p.Health || p.HealthTest != nil {
		test := p.HealthTest
		if test == nil {
			test = []string{"CMD", "/probe", "health"}
		}
		cfg.Healthcheck = &container.HealthConfig{Test: test, Interval: time.Second, Timeout: time.Second, Retries: 1}
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, p.Name)
	if err != nil {
		t.Fatalf("create container %s: %v", p.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := ctxTimeout(30 * time.Second)
		defer cancel()
		_ = cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if p.Start {
		if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
			t.Fatalf("start container %s: %v", p.Name, err)
		}
	}
	return created.ID
}

// WaitExited waits, at most a minute, until the started container id is no
// longer running.
func WaitExited(t testing.TB, cli *client.Client, id string) {
	t.Helper()
	ctx, cancel := ctxTimeout(time.Minute)
	defer cancel()
	waitC, errC := cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatalf("wait for container %s to exit: %v", id, err)
	}
}
