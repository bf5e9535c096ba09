package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

func TestProbeHealthFlips(t *testing.T) {
	t.Parallel()
	cli := Docker(t)
	id := RunProbe(t, cli, Probe{Name: Unique("dockcast-probe"), Health: true, Start: true,
		Args: []string{"healthy-for", "2s", "sleep", "60s"}})
	seen := map[string]bool{}
	Eventually(t, 30*time.Second, func() error {
		info, err := cli.ContainerInspect(context.Background(), id)
		if err != nil {
			return err
		}
		if info.State.Health == nil {
			return errors.New("no health state")
		}
		seen[info.State.Health.Status] = true
		if !seen["healthy"] || !seen["unhealthy"] {
			return errors.New("health has not gone healthy then unhealthy: " + info.State.Health.Status)
		}
		return nil
	})
}

func TestDockerProxyCut(t *testing.T) {
	t.Parallel()
	p := StartDockerProxy(t, "/var/run/docker.sock")
	cli, err := client.NewClientWithOpts(client.WithHost(p.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("ping through proxy: %v", err)
	}
	p.Cut()
	cli.HTTPClient().CloseIdleConnections()
	if _, err := cli.ContainerList(ctx, container.ListOptions{}); err == nil {
		t.Fatal("list succeeded through a cut proxy")
	}
	p.Restore()
	Eventually(t, 5*time.Second, func() error {
		_, err := cli.ContainerList(ctx, container.ListOptions{})
		return err
	})
}
