package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"

	"github.com/dockcast/dockcast/publisher/history"
	"github.com/dockcast/dockcast/publisher/metrics"
	"github.com/dockcast/dockcast/publisher/queue"
	"github.com/dockcast/dockcast/shared/backoff"
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
	ReasonClockStep  = "clock_step"
)

// EngineMemory is how many events an engine remembers: a resume can be
// offered again up to that many.
const EngineMemory = 256

// ResumeFunc returns the newest events of node in the stream, in stream
// order (history.Recent): at least those within window of the last one,
// and at least atLeast of them (none: the node has no event yet).
type ResumeFunc func(ctx context.Context, node string, window time.Duration, atLeast int) ([]event.Event, error)

// Watcher follows one Docker engine. Set the exported fields, then call Run once.
type Watcher struct {
	Client  *client.Client
	Node    string        // the node name (required)
	Filter  filter.Filter // PUBLISHER_FILTERS, applied by the engine
	Queue   *queue.Queue
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
	// PingInterval is how often a live subscription checks the engine
	// (from its own goroutine: the reader never waits on it).
	PingInterval time.Duration
	// CallTimeout bounds each non-streaming Docker call.
	CallTimeout time.Duration
	// Scheme is "https" when the engine is reached over TLS, else "http";
	// "" means https if DOCKER_CERT_PATH is set (as client.FromEnv
	// decides). /events is requested through the client's own HTTP
	// client, see openEvents.
	Scheme string
	// RoomAfterOverflow is the queue size in bytes to wait for after an
	// overflow (default: half the queue's bound).
	RoomAfterOverflow int64

	mark      marker
	connected bool // last status sent
	statusSet bool
	everUp    bool
}

var errOverflow = errors.New("queue full: docker subscription closed")

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
	if w.Scheme == "" && os.Getenv("DOCKER_CERT_PATH") != "" {
		w.Scheme = "https" // the Docker client's TLS from the environment (client.FromEnv)
	}
	if w.RoomAfterOverflow <= 0 {
		w.RoomAfterOverflow = w.Queue.MaxBytes() / 2
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
}

// Run follows the engine until ctx ends; it always returns nil then.
func (w *Watcher) Run(ctx context.Context) error {
	w.defaults()
	retry := backoff.New(w.BackoffMin, w.BackoffMax)
	retry.HealthyAfter = w.HealthyAfter
	for {
		up, err := w.session(ctx)
		w.Ready(false)
		if ctx.Err() != nil {
			return nil
		}
		retry.Healthy(up)
		first := retry.Current() == w.BackoffMin
		wasUp := w.connected
		w.setStatus(false, err, nil)
		wait := retry.Next()
		level := slog.LevelDebug // repeated failures: the first one was logged
		if wasUp || first {
			level = slog.LevelWarn
		}
		w.Log.Log(ctx, level, "docker unavailable, retrying", "err", err, "wait", wait.Round(time.Millisecond))
		if backoff.Sleep(ctx, wait) != nil {
			return nil
		}
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
	ver, err := w.Client.ServerVersion(cctx)
	if err != nil {
		return up, fmt.Errorf("docker version: %w", err)
	}
	up = time.Now()
	if w.everUp && w.Metrics != nil {
		w.Metrics.Reconnects.WithLabelValues("docker").Inc()
	}
	w.everUp = true
	w.setStatus(true, nil, &status.Engine{Version: ver.Version, APIVersion: ver.APIVersion})
	w.Log.Info("docker connected", "node", w.Node, "engine", ver.Version, "api", w.Client.ClientVersion())
	for {
		err := w.follow(ctx)
		if !errors.Is(err, errOverflow) {
			return up, err
		}
		w.Ready(false)
		if w.Metrics != nil {
			w.Metrics.QueueOverflows.Inc()
		}
		w.Log.Warn("queue full: docker subscription closed until it drains", "queue_bytes", w.Queue.Bytes())
		if err := w.Queue.WaitBytes(ctx, w.RoomAfterOverflow); err != nil {
			return up, err
		}
	}
}

func (w *Watcher) setStatus(connected bool, err error, engine *status.Engine) {
	if w.statusSet && w.connected == connected {
		return
	}
	w.statusSet, w.connected = true, connected
	s := status.Status{Node: w.Node, Docker: status.Disconnected, Since: time.Now().UTC()}
	if connected {
		s.Docker = status.Connected
		s.Engine = *engine
	} else if err != nil {
		s.Error = err.Error()
	}
	w.Status(s)
}

// resumePoint sets the mark from the stream on the first resume; later
// ones keep the mark of what this process enqueued, which is at least as
// new as anything it stored.
func (w *Watcher) resumePoint(ctx context.Context) error {
	if w.mark.set {
		return nil
	}
	retry := backoff.New(w.BackoffMin, w.BackoffMax)
	for {
		rctx, cancel := w.call(ctx)
		recent, err := w.Resume(rctx, w.Node, Slack, EngineMemory)
		cancel()
		if errors.Is(err, history.ErrUndecodable) {
			w.Log.Error("cannot resume from the stream: treating as a first start", "err", err)
			err, recent = nil, nil
		}
		if err == nil {
			w.mark.fromStream(recent)
			return nil
		}
		w.Log.Warn("waiting for NATS before resuming", "err", err)
		if err := retry.Wait(ctx); err != nil {
			return err
		}
	}
}

// engineClock is the engine's own clock (/info SystemTime): synthetic
// events carry it, never the publisher's.
func (w *Watcher) engineClock(ctx context.Context) (time.Time, error) {
	cctx, cancel := w.call(ctx)
	info, err := w.Client.Info(cctx)
	cancel()
	if err != nil {
		return time.Time{}, fmt.Errorf("docker info: %w", err)
	}
	s, err := time.Parse(time.RFC3339Nano, info.SystemTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("docker info: the engine's SystemTime %q: %w", info.SystemTime, err)
	}
	return s, nil
}

// follow resumes and then reads live events until an error.
func (w *Watcher) follow(ctx context.Context) error {
	if err := w.resumePoint(ctx); err != nil {
		return err
	}
	now, err := w.engineClock(ctx)
	if err != nil {
		return err
	}
	since := w.mark.since()
	reason := ""
	switch {
	case !w.mark.set:
		reason = ReasonFirstStart
	case w.mark.t > now.UnixNano()+Slack: // the resume point is in the engine's future
		reason = ReasonClockStep
	default:
		covered, err := w.covered(ctx, w.mark.t)
		if err != nil {
			return err
		}
		if !covered {
			reason = ReasonLostEvents
		}
	}
	if reason != "" {
		if err := w.announce(ctx, reason, now); err != nil {
			return err
		}
		since = w.mark.since()
		if reason != ReasonLostEvents {
			since = now.UnixNano() // what came before is in the snapshot
		}
	}
	return w.read(ctx, since, reason)
}

// read subscribes from since and hands every new event to the queue
// without ever waiting: a full queue ends the subscription (errOverflow).
// The engine is pinged from another goroutine.
func (w *Watcher) read(ctx context.Context, since int64, gap string) error {
	floor := w.mark.clone()
	lctx, cancel := context.WithCancelCause(ctx)
	var pinger sync.WaitGroup
	defer pinger.Wait()
	defer cancel(nil)
	s, err := openEvents(lctx, w.Client, w.Scheme, events.ListOptions{Since: event.SinceArg(since), Filters: w.Filter.Args()})
	if err != nil {
		return err
	}
	defer s.Close()
	w.Log.Info("following docker events", "since", event.SinceArg(since), "gap", gap)
	w.Ready(true)
	pinger.Add(1)
	go func() { defer pinger.Done(); w.ping(lctx, cancel) }()
	var m events.Message
	for {
		if err := s.Next(&m); err != nil {
			if cause := context.Cause(lctx); lctx.Err() != nil && ctx.Err() == nil && cause != nil {
				return cause // the pinger's
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the engine closed the event stream")
			}
			return fmt.Errorf("docker events: %w", err)
		}
		e := event.FromDockerMessage(w.Node, &m) // the next Next decodes into new strings and a new map
		if w.Metrics != nil {
			w.Metrics.Received(e.Time)
		}
		if floor.seen(&e) {
			continue
		}
		if err := w.take(e); err != nil {
			return err
		}
	}
}

// take hands one live event to the queue, announcing a backwards step of
// the engine's clock before it. It never waits.
func (w *Watcher) take(e event.Event) error {
	it, err := w.item(e)
	if err != nil {
		return err
	}
	if !w.mark.set || e.TimeNano >= w.mark.t-Slack {
		if !w.Queue.TryPush(it) {
			return errOverflow
		}
		w.mark.add(&e)
		return nil
	}
	// Stamped well before the newest event: the engine's clock stepped back.
	gap := w.gapEvent(ReasonClockStep, w.mark.t, e.Time)
	gapItem, err := w.item(gap)
	if err != nil {
		return err
	}
	if !w.Queue.TryPushAll([]queue.Item{gapItem, it}) {
		return errOverflow
	}
	w.Log.Warn("the engine's clock stepped back: announced", "from", time.Unix(0, w.mark.t).UTC(), "to", e.Time)
	if w.Metrics != nil {
		w.Metrics.Gaps.Inc()
	}
	w.mark.stepBack(e.TimeNano)
	w.mark.add(&gap)
	w.mark.add(&e)
	return nil
}

// item encodes e for the queue, once.
func (w *Watcher) item(e event.Event) (queue.Item, error) {
	it, err := queue.NewItem(e)
	if err != nil {
		return queue.Item{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	return it, nil
}

// ping checks the engine every PingInterval and ends the subscription
// (cancel, with the error as cause) when it does not answer.
func (w *Watcher) ping(ctx context.Context, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(w.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, pcancel := w.call(ctx)
		_, err := w.Client.Ping(pctx)
		pcancel()
		if err != nil && ctx.Err() == nil {
			cancel(fmt.Errorf("ping docker: %w", err))
			return
		}
	}
}

// covered asks the engine for its events until t, without filters: any
// answer proves it still remembers the resume point.
func (w *Watcher) covered(ctx context.Context, t int64) (bool, error) {
	n := 0
	err := w.finite(ctx, events.ListOptions{Until: event.SinceArg(t)}, func(events.Message) error {
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
	s, err := openEvents(fctx, w.Client, w.Scheme, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	var m events.Message
	for {
		if err := s.Next(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("docker events: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// gapEvent is a dockcast.gap of reason from the resume point (nanoseconds;
// none on a first start) until s, at s.
func (w *Watcher) gapEvent(reason string, from int64, s time.Time) event.Event {
	fromText := ""
	if reason != ReasonFirstStart {
		fromText = time.Unix(0, from).UTC().Format(time.RFC3339Nano)
	}
	return event.New(w.Node, event.TypeDockcast, event.ActionGap, "", w.Node, map[string]string{
		"reason": reason, "from": fromText, "until": s.UTC().Format(time.RFC3339Nano),
	}, s)
}

// announce queues a gap announcement, all of it or nothing: the gap event,
// the engine's remaining events since the resume point (engine_lost_events
// only), and the container snapshot, all at the engine's time s. It makes
// every event before it queues any, so a failure (an engine restarting
// mid-way) leaves the mark where it was and the next attempt announces the
// gap again; the announcement goes into one batch when it fits.
func (w *Watcher) announce(ctx context.Context, reason string, s time.Time) error {
	gap := w.gapEvent(reason, w.mark.t, s)
	evs := []event.Event{gap}
	if reason == ReasonLostEvents {
		floor := w.mark.clone()
		err := w.finite(ctx, events.ListOptions{
			Since: event.SinceArg(w.mark.since()), Until: event.SinceArg(gap.TimeNano), Filters: w.Filter.Args(),
		}, func(m events.Message) error {
			e := event.FromDocker(w.Node, m)
			if w.Metrics != nil {
				w.Metrics.Received(e.Time)
			}
			if !floor.seen(&e) {
				evs = append(evs, e)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("events until the gap: %w", err)
		}
	}
	states, err := w.snapshot(ctx, s)
	if err != nil {
		return err
	}
	evs = append(evs, states...)
	items := make([]queue.Item, len(evs))
	for i := range evs {
		if items[i], err = w.item(evs[i]); err != nil {
			return err
		}
	}
	items[0].Group = len(items)
	w.Log.Warn("announcing a possible gap", "reason", reason, "from", gap.Actor.Attributes["from"], "until", gap.Time,
		"replayed", len(evs)-1-len(states), "containers", len(states))
	if err := w.Queue.PushAll(ctx, items); err != nil {
		return err
	}
	if w.Metrics != nil {
		w.Metrics.Gaps.Inc()
	}
	if reason == ReasonClockStep {
		w.mark.stepBack(gap.TimeNano)
	}
	for i := range evs {
		w.mark.add(&evs[i])
	}
	return nil
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
		e := StateEvent(w.Node, c, s)
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
