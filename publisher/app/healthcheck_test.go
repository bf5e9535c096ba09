package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// dockerExec runs cmd in container id (detached) and returns the exec's id.
func dockerExec(t *testing.T, cli *client.Client, id string, cmd ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd})
	if err != nil {
		t.Fatalf("exec create %v: %v", cmd, err)
	}
	if err := cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
		t.Fatalf("exec start %v: %v", cmd, err)
	}
	return ex.ID
}

// A container's own health check (exec form and shell form, real engine)
// is tagged dockcast.healthcheck=true on exec_create, exec_start and
// exec_die (with the command); a user's docker exec of another command is
// not; one of exactly the check's command is (documented).
func TestHealthCheckTagged(t *testing.T) {
	t.Parallel()
	cli := testkit.Docker(t)
	testkit.EnsureProbeImage(t, cli)
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	label := testkit.Unique("hctag")
	p := startPub(t, map[string]string{"NATS_URL": ns.ClientURL(), "PUBLISHER_FILTERS": "label=" + labelKey + "=" + label}, nil)
	p.WaitReady()
	labels := map[string]string{labelKey: label}
	exe := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-hc-exec"), Health: true, Start: true,
		Labels: labels, Args: []string{"healthy-for", "60s", "sleep", "60s"}})
	shell := testkit.RunProbe(t, cli, testkit.Probe{Name: testkit.Unique("dockcast-hc-shell"), Start: true, Labels: labels,
		HealthTest: []string{"CMD-SHELL", "/probe health"}, Args: []string{"sleep", "60s"}})
	userOther := dockerExec(t, cli, exe, "/probe", "fail")
	userSame := dockerExec(t, cli, exe, "/probe", "health")

	type execSeen struct{ create, start, die *event.Event }
	var byExec map[string]*execSeen
	var shellEvents []event.Event
	testkit.Eventually(t, 90*time.Second, func() error {
		byExec = map[string]*execSeen{}
		shellEvents = nil
		for _, m := range readNode(t, js, "DOCKER_EVENTS", p.Node) {
			e := m.Event
			if e.Type != "container" {
				continue
			}
			if e.Actor.ID == shell && (e.Action == "exec_create" || e.Action == "exec_start") {
				shellEvents = append(shellEvents, e)
			}
			if e.Actor.ID != exe {
				continue
			}
			x := e.Actor.Attributes["execID"]
			if x == "" {
				continue
			}
			if byExec[x] == nil {
				byExec[x] = &execSeen{}
			}
			switch e.Action {
			case "exec_create":
				byExec[x].create = &e
			case "exec_start":
				byExec[x].start = &e
			case "exec_die":
				byExec[x].die = &e
			}
		}
		checks := 0
		for x, s := range byExec {
			if x != userOther && x != userSame && s.die != nil {
				checks++
			}
		}
		switch {
		case byExec[userOther] == nil || byExec[userOther].die == nil:
			return errors.New("the user's docker exec of /probe fail has not died yet")
		case byExec[userSame] == nil || byExec[userSame].die == nil:
			return errors.New("the user's docker exec of /probe health has not died yet")
		case checks < 2:
			return fmt.Errorf("%d health-check execs complete", checks)
		case len(shellEvents) < 2:
			return fmt.Errorf("%d exec events of the shell-form check", len(shellEvents))
		}
		return nil
	})
	for x, s := range byExec {
		if s.create == nil || s.start == nil || s.die == nil {
			continue // a check still running when the stream was read
		}
		for _, e := range []*event.Event{s.create, s.start, s.die} {
			tag, cmd := e.Actor.Attributes[event.AttrHealthcheck], e.Actor.Attributes[event.AttrCommand]
			wantCmd := ""
			if e.Action == "exec_die" {
				wantCmd = "/probe health"
			}
			switch {
			case x == userOther:
				if _, ok := e.Actor.Attributes[event.AttrHealthcheck]; ok || cmd != "" {
					t.Errorf("the user's own exec is tagged: %s %v", e.DockerAction(), e.Actor.Attributes)
				}
			case tag != "true" || cmd != wantCmd: // the checks, and the user's exec of the same command
				t.Errorf("exec %s (user's same command: %v): %s attributes %v, want tagged with command %q",
					x[:12], x == userSame, e.DockerAction(), e.Actor.Attributes, wantCmd)
			}
		}
	}
	for _, e := range shellEvents {
		if e.ActionDetail != "/bin/sh -c /probe health" || e.Actor.Attributes[event.AttrHealthcheck] != "true" {
			t.Errorf("shell-form check: %s %v", e.DockerAction(), e.Actor.Attributes)
		}
	}
}

// The health-check tag waits for a container's inspect in its own stage:
// with the engine holding that inspect, the reader still takes every
// event at once (the engine drops none for a slow reader); the stream
// gets them, in order and tagged, once the inspect is answered.
func TestHealthTagNeverBlocksReader(t *testing.T) {
	t.Parallel()
	js, e, p := withFakeEngine(t, testkit.FakeEngineOptions{}, nil)
	const slow = "slowcontainer"
	e.SetInspect(slow, container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: slow, Name: "/slow", Platform: "linux"},
		Config:            &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/probe", "health"}}},
	})
	release := e.Hold("/containers/" + slow + "/json")
	defer release()
	before, err := p.metric("dockcast_publisher_events_received_total")
	if err != nil {
		t.Fatal(err)
	}
	exec := func(action string) events.Message {
		m := testkit.Container(action, slow, "slow", map[string]string{"execID": "x1"})
		if action != "exec_die" {
			m.Action = events.Action(action + ": /probe health")
		}
		return m
	}
	e.Emit(exec("exec_create"))
	e.Emit(exec("exec_start"))
	const n = 3000
	if err := e.Burst(context.Background(), n, 0, containerEvent); err != nil {
		t.Fatal(err)
	}
	e.Emit(exec("exec_die"))
	testkit.Eventually(t, 60*time.Second, func() error {
		got, err := p.metric("dockcast_publisher_events_received_total")
		if err != nil {
			return err
		}
		if got-before != n+3 || e.Held() != 1 {
			return fmt.Errorf("reader took %v of %d events; %d inspects held", got-before, n+3, e.Held())
		}
		return nil
	})
	if e.Dropped() != 0 {
		t.Fatalf("the engine dropped %d events for a slow reader", e.Dropped())
	}
	for _, m := range readNode(t, js, "DOCKER_EVENTS", p.Node) {
		if m.Event.Actor.ID == slow || m.Event.Actor.Attributes["i"] != "" {
			t.Fatalf("seq %d (%s) stored before the inspect it waits behind was answered", m.Seq, m.Event.DockerAction())
		}
	}
	release()
	msgs := waitHistory(t, js, e, p.Node, time.Minute)
	tagged := 0
	for _, m := range msgs {
		if m.Event.Actor.ID == slow {
			if m.Event.Actor.Attributes[event.AttrHealthcheck] != "true" {
				t.Errorf("%s not tagged: %v", m.Event.DockerAction(), m.Event.Actor.Attributes)
			}
			tagged++
		}
	}
	if tagged != 3 {
		t.Fatalf("%d tagged events, want 3", tagged)
	}
}
