package docker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/event"
)

// Defaults of the HealthTagger's fields.
const (
	DefaultInspectTimeout   = 10 * time.Second
	DefaultInspectRetry     = 10 * time.Second
	DefaultTaggerContainers = 4096
	DefaultTaggerExecs      = 4096
)

// Inspector is the part of the Docker client the HealthTagger uses.
type Inspector interface {
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
}

// HealthTagger marks the exec_create, exec_start and exec_die events of a
// container's own health check with dockcast.healthcheck=true (exec_die
// also with dockcast.command, the check's command). Its Stage runs in the
// ordered stage between the Docker reader and the writer (queue.Relay),
// never in the reader: it may wait for a container's inspect, and the
// reader goes on meanwhile.
//
// The engine runs a check as an exec of the configured Healthcheck.Test
// (CMD: the arguments as they are; CMD-SHELL: the container's Shell, by
// default /bin/sh -c, then the command) and names it in the Action text
// ("exec_start: /bin/sh -c curl -f localhost"), the same way it names a
// user's `docker exec`; an exec whose command is exactly the configured
// check is tagged. exec_die carries no command, only the execID: it is
// tagged when its exec_create or exec_start was. So a user's `docker exec`
// of exactly the check's command is tagged too, and the exec_die of a check
// that began before the publisher started is not.
//
// The configured check of each container is inspected once, at its first
// exec event, and cached (the configuration of a container never changes;
// the entry is dropped on destroy). Both caches are bounded: the oldest
// entry goes first (it is inspected again when needed).
//
// Stage is called from one goroutine at a time.
type HealthTagger struct {
	Inspector Inspector
	Log       *slog.Logger
	// Timeout bounds one inspect; Retry is how long an inspect that failed
	// (other than for a container that no longer exists) is not tried again:
	// that container's exec events are not tagged meanwhile.
	Timeout, Retry time.Duration
	// MaxContainers and MaxExecs bound the caches of configured checks and
	// of health-check execs waiting for their exec_die.
	MaxContainers, MaxExecs int

	checks fifoMap[string, healthCheck]
	execs  fifoMap[string, string] // execID -> command
	now    func() time.Time
}

// healthCheck is what the tagger knows of one container's check.
type healthCheck struct {
	command string    // "" when the container has none (or it is unknown)
	retryAt time.Time // zero: final; else inspect again after it
}

// NewHealthTagger returns a tagger that inspects with cli.
func NewHealthTagger(cli *client.Client, log *slog.Logger) *HealthTagger {
	return &HealthTagger{Inspector: cli, Log: log}
}

func (h *HealthTagger) init() {
	if h.now != nil {
		return
	}
	h.now = time.Now
	if h.Timeout <= 0 {
		h.Timeout = DefaultInspectTimeout
	}
	if h.Retry <= 0 {
		h.Retry = DefaultInspectRetry
	}
	if h.MaxContainers <= 0 {
		h.MaxContainers = DefaultTaggerContainers
	}
	if h.MaxExecs <= 0 {
		h.MaxExecs = DefaultTaggerExecs
	}
	if h.Log == nil {
		h.Log = slog.New(slog.DiscardHandler)
	}
	h.checks.max, h.execs.max = h.MaxContainers, h.MaxExecs
}

// Stage tags it when it is an exec event of its container's own health
// check (a queue.Stage). It fails only when ctx ends.
func (h *HealthTagger) Stage(ctx context.Context, it *queue.Item) error {
	h.init()
	e := &it.Event
	if e.Type != "container" {
		return nil
	}
	switch e.Action {
	case "destroy":
		h.checks.delete(e.Actor.ID)
		return nil
	case "exec_create", "exec_start":
		check, err := h.check(ctx, e.Actor.ID)
		if err != nil {
			return err
		}
		if check == "" || e.ActionDetail != check {
			return nil
		}
		if id := e.Actor.Attributes["execID"]; id != "" {
			h.execs.put(id, check)
		}
		return tag(it, "")
	case "exec_die":
		id := e.Actor.Attributes["execID"]
		check, ok := h.execs.get(id)
		if !ok {
			return nil
		}
		h.execs.delete(id)
		return tag(it, check)
	}
	return nil
}

// tag marks it as a health-check exec (with its command, for exec_die).
func tag(it *queue.Item, command string) error {
	attrs := it.Event.Actor.Attributes
	if attrs == nil {
		attrs = map[string]string{}
		it.Event.Actor.Attributes = attrs
	}
	attrs[event.AttrHealthcheck] = "true"
	if command != "" {
		attrs[event.AttrCommand] = command
	}
	if err := it.Reencode(); err != nil {
		return fmt.Errorf("encode tagged event %s: %w", it.Event.ID, err)
	}
	return nil
}

// check is the configured health-check command of container id as the
// engine writes it in exec events ("" for none), from the cache or an
// inspect. It fails only when ctx ends.
func (h *HealthTagger) check(ctx context.Context, id string) (string, error) {
	if c, ok := h.checks.get(id); ok && (c.retryAt.IsZero() || h.now().Before(c.retryAt)) {
		return c.command, nil
	}
	ictx, cancel := context.WithTimeout(ctx, h.Timeout)
	info, err := h.Inspector.ContainerInspect(ictx, id)
	cancel()
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err()
	case client.IsErrNotFound(err): // gone: nothing more will run in it
		h.checks.put(id, healthCheck{})
		return "", nil
	case err != nil:
		h.Log.Warn("inspect for the health-check tag failed: its exec events are not tagged for a while",
			"container", id, "err", err, "retry_in", h.Retry)
		h.checks.put(id, healthCheck{retryAt: h.now().Add(h.Retry)})
		return "", nil
	}
	c := healthCheck{}
	if info.Config != nil {
		platform := ""
		if info.ContainerJSONBase != nil {
			platform = info.Platform
		}
		c.command = CheckCommand(info.Config.Healthcheck, info.Config.Shell, platform)
	}
	h.checks.put(id, c)
	return c.command, nil
}

// CheckCommand is the command of the health check hc as the engine writes
// it in the Action of the check's exec events ("" when there is no check):
// CMD runs its arguments, CMD-SHELL runs the container's shell (default
// /bin/sh -c, or cmd /S /C on Windows) with the command.
func CheckCommand(hc *container.HealthConfig, shell []string, platform string) string {
	if hc == nil || len(hc.Test) < 2 {
		return ""
	}
	var args []string
	switch hc.Test[0] {
	case "CMD":
		args = hc.Test[1:]
	case "CMD-SHELL":
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
			if platform == "windows" {
				shell = []string{"cmd", "/S", "/C"}
			}
		}
		args = append(append([]string{}, shell...), hc.Test[1:]...)
	default: // NONE, or a form this engine does not run
		return ""
	}
	return strings.TrimSpace(strings.Join(args, " "))
}

// fifoMap is a map bounded to max entries: putting a new key beyond it
// drops the oldest one.
type fifoMap[K comparable, V any] struct {
	max   int
	m     map[K]V
	order []K // insertion order; may hold keys deleted since
}

func (f *fifoMap[K, V]) get(k K) (V, bool) {
	v, ok := f.m[k]
	return v, ok
}

func (f *fifoMap[K, V]) put(k K, v V) {
	if f.m == nil {
		f.m = map[K]V{}
	}
	if _, ok := f.m[k]; !ok {
		f.order = append(f.order, k)
	}
	f.m[k] = v
	for len(f.m) > f.max && len(f.order) > 0 {
		old := f.order[0]
		f.order = f.order[1:]
		delete(f.m, old)
	}
	if len(f.order) > 2*f.max+16 { // compact the keys deleted since
		live := make([]K, 0, len(f.m))
		for _, k := range f.order {
			if _, ok := f.m[k]; ok {
				live = append(live, k)
			}
		}
		f.order = live
	}
}

func (f *fifoMap[K, V]) delete(k K) { delete(f.m, k) }
