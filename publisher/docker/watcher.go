package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/publisher/config"
	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/status"
)

// Defaults of the Watcher's fields.
const (
	DefaultBackoffMin   = 250 * time.Millisecond
	DefaultBackoffMax   = 30 * time.Second
	DefaultHealthyAfter = 30 * time.Second
	DefaultPingInterval = 15 * time.Second
	DefaultCallTimeout  = 30 * time.Second
)

// Gap reasons, in the "reason" attribute of a dockcast.gap event.
const (
	ReasonFirstStart = "first_start"
	ReasonLostEvents = "engine_lost_events"
)

// ResumeFunc returns the newest events of node in the stream: at least
// those within window of the newest one (none: the node has no event yet).
type ResumeFunc func(ctx context.Context, node string, window time.Duration) ([]event.Event, error)

// Watcher follows one Docker engine. Set the exported fields, then call Run once.
type Watcher struct {
	Client  *client.Client
	Node    string        // configured node name; empty takes the engine's name
	Filter  filter.Filter // PUBLISHER_FILTERS, applied by the engine
	Queue   *stream.Queue
	Resume  ResumeFunc
	Metrics *metrics.Metrics // may be nil
	Log     *slog.Logger
	// Status is called on every change of the Docker connection state.
	Status func(status.Status)
	// Ready is called with true once the live subscription runs after a
	// resume, and with false when it stops.
	Ready func(bool)

	// BackoffMin/Max bound the reconnect backoff (with jitter); it is reset
	// once a connection stayed up for HealthyAfter.
	BackoffMin, BackoffMax, HealthyAfter time.Duration
	// PingInterval is how often a live subscription checks the engine.
	PingInterval time.Duration
	// CallTimeout bounds each non-streaming Docker call.
	CallTimeout time.Duration
	// RoomAfterOverflow is the queue length to wait for after an overflow
	// (default: half the capacity).
	RoomAfterOverflow int

	node      string
	mark      marker
	connected bool // last status sent
	statusSet bool
	everUp    bool
}

var errOverflow = errors.New("queue full: docker subscription closed")

// NodeName is the node the watcher publishes under ("" before it is known).
func (w *Watcher) NodeName() string { return w.node }

func (w *Watcher) defaults() {
	if w.BackoffMin <= 0 {
		w.BackoffMin = DefaultBackoffMin
	}
	if w.BackoffMax < w.BackoffMin {
		w.BackoffMax = max(DefaultBackoffMax, w.BackoffMin)
	}
	if w.HealthyAfter <= 0 {
		w.HealthyAfter = DefaultHealthyAfter
	}
	if w.PingInterval <= 0 {
		w.PingInterval = DefaultPingInterval
	}
	if w.CallTimeout <= 0 {
		w.CallTimeout = DefaultCallTimeout
	}
	if w.RoomAfterOverflow <= 0 {
		w.RoomAfterOverflow = w.Queue.Cap() / 2
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	if w.Status == nil {
		w.Status = func(status.Status) {}
	}
	if w.Ready == nil {
		w.Ready = func(bool) {}
	}
	w.node = w.Node
}

// Run follows the engine until ctx ends; it always returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	w.defaults()
	backoff := w.BackoffMin
	for {
		up, err := w.session(ctx)
		w.Ready(false)
		if ctx.Err() != nil {
			return nil
		}
		if !up.IsZero() && time.Since(up) >= w.HealthyAfter {
			backoff = w.BackoffMin
		}
		wasUp := w.connected
		w.setStatus(false, err, nil)
		wait := stream.Jitter(backoff)
		level := slog.LevelDebug // repeated failures: the first one was logged
		if wasUp || !w.statusSet || backoff == w.BackoffMin {
			level = slog.LevelWarn
		}
		w.Log.Log(ctx, level, "docker unavailable, retrying", "err", err, "wait", wait.Round(time.Millisecond))
		if stream.Sleep(ctx, wait) != nil {
			return nil
		}
		backoff = min(2*backoff, w.BackoffMax)
	}
}

func (w *Watcher) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, w.CallTimeout)
}

// session connects once and follows the engine until something fails. up
// is when the connection was established (zero if it never was).
func (w *Watcher) session(ctx context.Context) (up time.Time, err error) {
	cctx, cancel := w.call(ctx)
	defer cancel()
	if _, err := w.Client.Ping(cctx); err != nil {
		return up, fmt.Errorf("ping docker: %w", err)
	}
	info, err := w.Client.Info(cctx)
	if err != nil {
		return up, fmt.Errorf("docker info: %w", err)
	}
	ver, err := w.Client.ServerVersion(cctx)
	if err != nil {
		return up, fmt.Errorf("docker version: %w", err)
	}
	if w.node == "" {
		w.node = config.SanitizeNode(info.Name)
		w.Log.Info("node name taken from the engine", "node", w.node, "engine_name", info.Name)
	}
	up = time.Now()
	if w.everUp && w.Metrics != nil {
		w.Metrics.Reconnects.WithLabelValues("docker").Inc()
	}
	w.everUp = true
	w.setStatus(true, nil, &status.Engine{Version: ver.Version, APIVersion: ver.APIVersion})
	w.Log.Info("docker connected", "node", w.node, "engine", ver.Version, "api", w.Client.ClientVersion())
	for {
		err := w.follow(ctx)
		if !errors.Is(err, errOverflow) {
			return up, err
		}
		w.Ready(false)
		if w.Metrics != nil {
			w.Metrics.QueueOverflows.Inc()
		}
		w.Log.Warn("queue full: docker subscription closed until it drains", "queue", w.Queue.Len())
		if err := w.Queue.WaitRoom(ctx, w.RoomAfterOverflow); err != nil {
			return up, err
		}
	}
}

func (w *Watcher) setStatus(connected bool, err error, engine *status.Engine) {
	if w.statusSet && w.connected == connected {
		return
	}
	if w.node == "" {
		return // no key yet: the engine never answered and no PUBLISHER_NODE
	}
	w.statusSet, w.connected = true, connected
	s := status.Status{Node: w.node, Docker: status.Disconnected, Since: time.Now().UTC()}
	if connected {
		s.Docker = status.Connected
		s.Engine = *engine
	} else if err != nil {
		s.Error = err.Error()
	}
	w.Status(s)
}

// resumePoint determines T from the stream and what this process enqueued.
func (w *Watcher) resumePoint(ctx context.Context) error {
	wait := w.BackoffMin
	for {
		rctx, cancel := w.call(ctx)
		recent, err := w.Resume(rctx, w.node, Slack)
		cancel()
		if errors.Is(err, stream.ErrUndecodable) {
			w.Log.Error("cannot resume from the stream: treating as a first start", "err", err)
			err, recent = nil, nil
		}
		if err == nil {
			for _, e := range recent {
				w.mark.add(&e)
			}
			return nil
		}
		if w.mark.set {
			// Not the first resume: what this process enqueued is at least
			// as new as anything it stored.
			w.Log.Warn("stream unreachable, resuming from the last enqueued event", "err", err)
			return nil
		}
		w.Log.Warn("waiting for NATS before resuming", "err", err, "wait", wait)
		if err := stream.Sleep(ctx, stream.Jitter(wait)); err != nil {
			return err
		}
		wait = min(2*wait, w.BackoffMax)
	}
}

// follow resumes and then reads live events until an error.
func (w *Watcher) follow(ctx context.Context) error {
	if err := w.resumePoint(ctx); err != nil {
		return err
	}
	args := w.Filter.Args()
	since := w.mark.since()
	gap := ""
	switch {
	case !w.mark.set:
		gap = ReasonFirstStart
	default:
		covered, err := w.covered(ctx, w.mark.t)
		if err != nil {
			return err
		}
		if !covered {
			gap = ReasonLostEvents
		}
	}
	if gap != "" {
		s, err := w.announceGap(ctx, gap)
		if err != nil {
			return err
		}
		since = s // first start: what came before the snapshot is in the state events
		if gap == ReasonLostEvents {
			since = w.mark.since() // the snapshot is at S, the mark at least S
		}
	}
	floor := w.mark.clone()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := w.Client.Events(lctx, events.ListOptions{Since: event.SinceArg(since), Filters: args})
	w.Log.Info("following docker events", "since", event.SinceArg(since), "gap", gap)
	w.Ready(true)
	ping := time.NewTicker(w.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the engine closed the event stream")
			}
			return fmt.Errorf("docker events: %w", err)
		case m := <-msgs:
			e := event.FromDocker(w.node, m)
			if w.Metrics != nil {
				w.Metrics.Received(e.Time)
			}
			if floor.seen(&e) {
				continue
			}
			if !w.Queue.TryPush(e) {
				return errOverflow
			}
			w.mark.add(&e)
		case <-ping.C:
			pctx, pcancel := w.call(ctx)
			_, err := w.Client.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ping docker: %w", err)
			}
		}
	}
}

// covered asks the engine for its events until T: any answer proves it
// still remembers the resume point.
func (w *Watcher) covered(ctx context.Context, t int64) (bool, error) {
	n := 0
	err := w.finite(ctx, events.ListOptions{Until: event.SinceArg(t), Filters: w.Filter.Args()}, func(events.Message) error {
		n++
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("gap check: %w", err)
	}
	w.Log.Debug("gap check", "until", event.SinceArg(t), "engine_events", n)
	return n > 0, nil
}

// finite reads a bounded /events query (with Until) to its end.
func (w *Watcher) finite(ctx context.Context, opts events.ListOptions, fn func(events.Message) error) error {
	fctx, cancel := w.call(ctx)
	defer cancel()
	msgs, errs := w.Client.Events(fctx, opts)
	for {
		select {
		case m := <-msgs:
			if err := fn(m); err != nil {
				return err
			}
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// announceGap enqueues the gap event, the engine's remaining events since
// the resume point, and the container state snapshot; it returns S.
func (w *Watcher) announceGap(ctx context.Context, reason string) (int64, error) {
	cctx, cancel := w.call(ctx)
	info, err := w.Client.Info(cctx)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("docker info: %w", err)
	}
	s, err := time.Parse(time.RFC3339Nano, info.SystemTime)
	if err != nil {
		s = time.Now()
	}
	from := ""
	if reason != ReasonFirstStart {
		from = time.Unix(0, w.mark.t).UTC().Format(time.RFC3339Nano)
	}
	gapEv := event.New(w.node, event.TypeDockcast, event.ActionGap, "", w.node, map[string]string{
		"reason": reason, "from": from, "until": s.UTC().Format(time.RFC3339Nano),
	}, s)
	w.Log.Warn("announcing a possible gap", "reason", reason, "from", from, "until", gapEv.Time)
	if err := w.Queue.Push(ctx, gapEv); err != nil {
		return 0, err
	}
	if w.Metrics != nil {
		w.Metrics.Gaps.Inc()
	}
	synthetic := []event.Event{gapEv}
	if reason != ReasonFirstStart {
		floor := w.mark.clone()
		err := w.finite(ctx, events.ListOptions{
			Since: event.SinceArg(w.mark.since()), Until: event.SinceArg(gapEv.TimeNano), Filters: w.Filter.Args(),
		}, func(m events.Message) error {
			e := event.FromDocker(w.node, m)
			if w.Metrics != nil {
				w.Metrics.Received(e.Time)
			}
			if floor.seen(&e) {
				return nil
			}
			if err := w.Queue.Push(ctx, e); err != nil {
				return err
			}
			w.mark.add(&e)
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("events until the gap: %w", err)
		}
	}
	states, err := w.snapshot(ctx, s)
	if err != nil {
		return 0, err
	}
	for _, e := range states {
		if err := w.Queue.Push(ctx, e); err != nil {
			return 0, err
		}
	}
	for _, e := range append(synthetic, states...) {
		w.mark.add(&e)
	}
	return gapEv.TimeNano, nil
}

// snapshot makes one container.state event per container (that the filter admits).
func (w *Watcher) snapshot(ctx context.Context, s time.Time) ([]event.Event, error) {
	f, ok := stateFilter(w.Filter)
	if !ok {
		return nil, nil
	}
	cctx, cancel := w.call(ctx)
	list, err := w.Client.ContainerList(cctx, container.ListOptions{All: true})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Created != list[j].Created {
			return list[i].Created < list[j].Created
		}
		return list[i].ID < list[j].ID
	})
	var out []event.Event
	for _, c := range list {
		e := StateEvent(w.node, c, s)
		if f.Match(&e) {
			out = append(out, e)
		}
	}
	return out, nil
}

// StateEvent is the container.state event of c at time s.
func StateEvent(node string, c container.Summary, s time.Time) event.Event {
	attrs := make(map[string]string, len(c.Labels)+3)
	for k, v := range c.Labels {
		attrs[k] = v
	}
	name := ""
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	attrs["name"] = name
	attrs["image"] = c.Image
	attrs["health"] = Health(c.Status)
	state := string(c.State)
	if state == "" {
		state = "unknown"
	}
	return event.New(node, "container", event.ActionState, state, c.ID, attrs, s)
}

// Health extracts the health from a container's status text ("Up 3
// minutes (healthy)"): healthy, unhealthy, starting, or "".
func Health(statusText string) string {
	switch {
	case strings.Contains(statusText, "(healthy)"):
		return "healthy"
	case strings.Contains(statusText, "(unhealthy)"):
		return "unhealthy"
	case strings.Contains(statusText, "(health: starting)"):
		return "starting"
	}
	return ""
}

// stateFilter is the part of the engine filter that applies to state
// events: the event key is dropped (state is not an engine action), and a
// type filter without "container" excludes them all.
func stateFilter(f filter.Filter) (filter.Filter, bool) {
	if types := f.Values("type"); len(types) > 0 && !contains(types, "container") {
		return filter.Filter{}, false
	}
	var terms []string
	for _, t := range f.Terms() {
		if !strings.HasPrefix(t, "event=") {
			terms = append(terms, t)
		}
	}
	g, err := filter.Parse(terms, filter.EngineKeys)
	if err != nil {
		return f, true
	}
	return g, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
