package docker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/errdefs"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/event"
)

func TestCheckCommand(t *testing.T) {
	t.Parallel()
	hc := func(test ...string) *container.HealthConfig { return &container.HealthConfig{Test: test} }
	for _, c := range []struct {
		hc       *container.HealthConfig
		shell    []string
		platform string
		want     string
	}{
		{nil, nil, "linux", ""},
		{hc(), nil, "linux", ""},
		{hc("NONE"), nil, "linux", ""},
		{hc("CMD"), nil, "linux", ""},
		{hc("CMD", "/probe", "health"), nil, "linux", "/probe health"},
		{hc("CMD-SHELL", "curl -f http://localhost/ || exit 1"), nil, "linux", "/bin/sh -c curl -f http://localhost/ || exit 1"},
		{hc("CMD-SHELL", "check"), []string{"/bin/bash", "-eo", "pipefail", "-c"}, "linux", "/bin/bash -eo pipefail -c check"},
		{hc("CMD-SHELL", "check.exe"), nil, "windows", "cmd /S /C check.exe"},
		{hc("FUTURE", "x"), nil, "linux", ""},
	} {
		if got := CheckCommand(c.hc, c.shell, c.platform); got != c.want {
			t.Errorf("CheckCommand(%v, %q, %s) = %q, want %q", c.hc, c.shell, c.platform, got, c.want)
		}
	}
}

// fakeInspector answers from configs; it counts inspects per id.
type fakeInspector struct {
	configs map[string]*container.HealthConfig
	fail    error
	calls   map[string]int
}

func (f *fakeInspector) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.calls[id]++
	if f.fail != nil {
		return container.InspectResponse{}, f.fail
	}
	hc, ok := f.configs[id]
	if !ok {
		return container.InspectResponse{}, errdefs.NotFound(errors.New("No such container: " + id))
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Platform: "linux"},
		Config:            &container.Config{Healthcheck: hc},
	}, nil
}

func execEvent(id, action, detail, execID string) queue.Item {
	attrs := map[string]string{"name": "svc-" + id, "image": "probe"}
	if execID != "" {
		attrs["execID"] = execID
	}
	e := event.New("n", "container", action, detail, id, attrs, time.Unix(100, 0))
	it, err := queue.NewItem(e)
	if err != nil {
		panic(err)
	}
	return it
}

func TestHealthTaggerStage(t *testing.T) {
	t.Parallel()
	ins := &fakeInspector{calls: map[string]int{}, configs: map[string]*container.HealthConfig{
		"hc":    {Test: []string{"CMD", "/probe", "health"}},
		"shell": {Test: []string{"CMD-SHELL", "/probe health"}},
		"plain": nil,
	}}
	h := &HealthTagger{Inspector: ins, MaxContainers: 2, MaxExecs: 2}
	ctx := context.Background()
	run := func(it queue.Item) queue.Item {
		t.Helper()
		if err := h.Stage(ctx, &it); err != nil {
			t.Fatal(err)
		}
		return it
	}
	tagged := func(it queue.Item) bool { return it.Event.Actor.Attributes[event.AttrHealthcheck] == "true" }
	for _, c := range []struct {
		it      queue.Item
		tagged  bool
		command string
	}{
		{execEvent("hc", "exec_create", "/probe health", "e1"), true, ""},
		{execEvent("hc", "exec_start", "/probe health", "e1"), true, ""},
		{execEvent("hc", "exec_create", "/probe fail", "u1"), false, ""}, // a user's docker exec
		{execEvent("hc", "exec_start", "/probe fail", "u1"), false, ""},
		{execEvent("hc", "exec_die", "", "u1"), false, ""},
		{execEvent("hc", "exec_die", "", "e1"), true, "/probe health"},
		{execEvent("hc", "exec_die", "", "e1"), false, ""}, // once only
		{execEvent("shell", "exec_start", "/bin/sh -c /probe health", "s1"), true, ""},
		{execEvent("shell", "exec_start", "/probe health", "s2"), false, ""},
		{execEvent("plain", "exec_start", "/probe health", "p1"), false, ""},
		{execEvent("gone", "exec_start", "/probe health", "g1"), false, ""},
		{execEvent("hc", "start", "", ""), false, ""},
	} {
		got := run(c.it)
		if tagged(got) != c.tagged || got.Event.Actor.Attributes[event.AttrCommand] != c.command {
			t.Errorf("%s %s (exec %s): attributes %v, want tagged %v command %q", got.Event.Actor.ID, got.Event.DockerAction(),
				got.Event.Actor.Attributes["execID"], got.Event.Actor.Attributes, c.tagged, c.command)
		}
		if tagged(got) {
			back, err := event.Decode(got.Data)
			if err != nil || back.Actor.Attributes[event.AttrHealthcheck] != "true" {
				t.Errorf("the tag is not in the encoded payload: %v %v", err, back.Actor.Attributes)
			}
		}
	}
	if ins.calls["hc"] != 1 || ins.calls["gone"] != 1 {
		t.Errorf("inspects %v: one per container (cached)", ins.calls)
	}

	// destroy drops the cached check; a later container of that id is inspected again.
	run(execEvent("hc", "destroy", "", ""))
	ins.configs["hc"] = &container.HealthConfig{Test: []string{"CMD", "/other"}}
	if !tagged(run(execEvent("hc", "exec_start", "/other", "e2"))) {
		t.Error("the check of a re-created container is not inspected again")
	}

	// A failing inspect leaves the events untagged and is retried only after Retry.
	f := &fakeInspector{calls: map[string]int{}, fail: errors.New("engine busy"),
		configs: map[string]*container.HealthConfig{"hc": {Test: []string{"CMD", "/probe", "health"}}}}
	now := time.Unix(1000, 0)
	h2 := &HealthTagger{Inspector: f, Retry: time.Minute}
	h2.init()
	h2.now = func() time.Time { return now }
	for range 3 {
		it := execEvent("hc", "exec_start", "/probe health", "x")
		if err := h2.Stage(ctx, &it); err != nil || tagged(it) {
			t.Fatalf("failing inspect: err %v, tagged %v", err, tagged(it))
		}
	}
	if f.calls["hc"] != 1 {
		t.Fatalf("a failed inspect was retried %d times within Retry", f.calls["hc"]-1)
	}
	f.fail, now = nil, now.Add(2*time.Minute)
	it := execEvent("hc", "exec_start", "/probe health", "x")
	if err := h2.Stage(ctx, &it); err != nil || !tagged(it) {
		t.Fatalf("after Retry: err %v, tagged %v", err, tagged(it))
	}

	// An ended context is the stage's error (the relay stops).
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	h3 := &HealthTagger{Inspector: &fakeInspector{calls: map[string]int{}, fail: context.Canceled}}
	it = execEvent("hc", "exec_start", "/probe health", "x")
	if err := h3.Stage(cctx, &it); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
}

func TestFIFOMapBounded(t *testing.T) {
	t.Parallel()
	f := fifoMap[int, int]{max: 3}
	for i := range 100 {
		f.put(i, i)
		if i%2 == 0 {
			f.delete(i)
		}
	}
	if len(f.m) > 3 || len(f.order) > 2*3+16 {
		t.Fatalf("map %d entries, order %d", len(f.m), len(f.order))
	}
	if _, ok := f.get(99); !ok {
		t.Fatal("the newest entry was evicted")
	}
}

// BenchmarkHealthTaggerStage: the stage's cost per event, for a start
// event (most events: nothing to do) and a cached check's exec_start.
func BenchmarkHealthTaggerStage(b *testing.B) {
	ins := &fakeInspector{calls: map[string]int{}, configs: map[string]*container.HealthConfig{"hc": {Test: []string{"CMD", "/probe", "health"}}}}
	h := &HealthTagger{Inspector: ins}
	for _, c := range []struct {
		name string
		it   queue.Item
	}{{"start", execEvent("hc", "start", "", "")}, {"check_exec_start", execEvent("hc", "exec_start", "/probe health", "e1")}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				it := c.it
				if err := h.Stage(context.Background(), &it); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
