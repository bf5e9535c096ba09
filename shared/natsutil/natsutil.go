package natsutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/status"
	"github.com/dockcast/dockcast/shared/subject"
)

// Options configure Connect.
type Options struct {
	URL    string         // comma-separated server URLs
	Creds  string         // credentials file, optional
	TLS    config.NATSTLS // private CA and client certificate, optional
	Name   string         // client name shown by the server
	Logger *slog.Logger
	// PingInterval and MaxPingsOut decide how fast a dead connection is
	// noticed: after MaxPingsOut unanswered pings sent PingInterval apart
	// (defaults DefaultPingInterval and DefaultMaxPingsOut: about 10 s,
	// where the client library's own defaults take minutes).
	PingInterval time.Duration
	MaxPingsOut  int
	// OnChange, if set, is called with true on (re)connect and false on disconnect.
	OnChange func(connected bool)
}

// Defaults of Options.PingInterval and Options.MaxPingsOut.
const (
	DefaultPingInterval = 5 * time.Second
	DefaultMaxPingsOut  = 2
)

// Connect dials NATS and keeps reconnecting forever (with jitter), also
// when no server is reachable at first: the returned connection reconnects
// in the background. Only a bad URL or credentials file is an error.
func Connect(o Options) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	changed := func(up bool) {
		if o.OnChange != nil {
			o.OnChange(up)
		}
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.MaxPingsOut <= 0 {
		o.MaxPingsOut = DefaultMaxPingsOut
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(o.MaxPingsOut),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1), // never buffer publishes while disconnected: callers retry
		nats.ConnectHandler(func(c *nats.Conn) {
			log.Info("nats connected", "server", c.ConnectedUrlRedacted())
			changed(true)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
			changed(true)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			} else {
				log.Info("nats disconnected")
			}
			changed(false)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(o.TLS.CA))
	}
	if o.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(o.TLS.Cert, o.TLS.Key))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", o.URL, err)
	}
	return nc, nil
}

// ErrNotConnected replaces the client's "outbound buffer limit exceeded",
// which is what a request made while the connection is down reports
// (publishes are never buffered during a reconnect).
var ErrNotConnected = errors.New("nats not connected")

// Explain makes a request error from a disconnected client say so.
func Explain(err error) error {
	if errors.Is(err, nats.ErrReconnectBufExceeded) {
		return ErrNotConnected
	}
	return err
}

// StreamConfig is the configuration of the event stream: file storage,
// subjects docker.events.>, the given limits, a two-minute duplicate
// window, direct gets and atomic batch publishing (the publisher's writer
// needs them).
func StreamConfig(name string, maxAge time.Duration, maxBytes int64, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Docker Engine events published by dockcast",
		Subjects:    []string{subject.All},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      maxAge,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
		AllowDirect: true,

		AllowAtomicPublish: true,
	}
}

// EnsureStream creates the stream when it is missing and updates its limits
// (age, bytes, messages, replicas, duplicate window) when they differ from
// want, keeping its data and any other setting an operator made.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	return EnsureSharedStream(ctx, js, want, Explicit{MaxAge: true, MaxBytes: true, Replicas: true, Duplicates: true}, log)
}

// Explicit says which limits of a wanted stream configuration were asked
// for explicitly (for the publisher: its PUBLISHER_STREAM_* variable is
// present in the environment).
type Explicit struct {
	MaxAge, MaxBytes, Replicas, Duplicates bool
}

// EnsureSharedStream creates the stream when it is missing. An existing
// stream is shared with others: of its limits (max age, max bytes,
// replicas, duplicate window) only the explicit ones are set as want has
// them (lowering one is logged as a warning); the others stay as they
// are, and a difference from want is only logged. Direct gets and atomic
// batches are turned on when they are off. The data is kept.
func EnsureSharedStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, explicit Explicit, log *slog.Logger) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another publisher made it just now
			return EnsureSharedStream(ctx, js, want, explicit, log)
		}
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", want.Name, Explain(err))
		}
		log.Info("stream created", "stream", want.Name, "replicas", want.Replicas, "max_age", want.MaxAge,
			"max_bytes", want.MaxBytes, "duplicate_window", want.Duplicates)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", want.Name, Explain(err))
	}
	have := s.CachedInfo().Config
	next := have
	limit := func(name string, set bool, haveV, wantV any, lower bool, apply func()) {
		if reflect.DeepEqual(haveV, wantV) {
			return
		}
		if !set {
			log.Info("stream limit differs from this publisher's default: left as it is (set the variable to change it)",
				"stream", want.Name, "limit", name, "stream_has", haveV, "default", wantV)
			return
		}
		apply()
		if lower {
			log.Warn("lowering a limit of the shared stream, as configured", "stream", want.Name, "limit", name, "from", haveV, "to", wantV)
		}
	}
	limit("max_age", explicit.MaxAge, have.MaxAge, want.MaxAge, lowerLimit(int64(have.MaxAge), int64(want.MaxAge)), func() { next.MaxAge = want.MaxAge })
	limit("max_bytes", explicit.MaxBytes, have.MaxBytes, want.MaxBytes, lowerLimit(have.MaxBytes, want.MaxBytes), func() { next.MaxBytes = want.MaxBytes })
	limit("replicas", explicit.Replicas, have.Replicas, want.Replicas, want.Replicas < have.Replicas, func() { next.Replicas = want.Replicas })
	limit("duplicate_window", explicit.Duplicates, have.Duplicates, want.Duplicates, want.Duplicates < have.Duplicates, func() { next.Duplicates = want.Duplicates })
	asked := !reflect.DeepEqual(have, next) // an explicit limit changes
	next.AllowDirect = true
	next.AllowAtomicPublish = true
	if reflect.DeepEqual(have, next) {
		return s, nil
	}
	updated, err := js.UpdateStream(ctx, next)
	if err != nil && !asked { // only the features: the publisher can do without them, slower
		log.Warn("cannot turn on direct gets and atomic batches on the stream: going on without them", "stream", want.Name, "err", err)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	s = updated
	log.Info("stream updated", "stream", want.Name, "max_age", next.MaxAge, "max_bytes", next.MaxBytes, "replicas", next.Replicas,
		"duplicate_window", next.Duplicates, "atomic_batches", next.AllowAtomicPublish)
	return s, nil
}

// lowerLimit reports whether limit want is below have, where 0 or less
// means unlimited.
func lowerLimit(have, want int64) bool {
	if want <= 0 {
		return false
	}
	return have <= 0 || want < have
}

// EnsureStatusBucket creates or opens the DOCKER_STATUS key-value bucket.
func EnsureStatusBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, status.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", status.Bucket, Explain(err))
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      status.Bucket,
		Description: "Docker connection status of each dockcast publisher",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, status.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", status.Bucket, err)
	}
	return kv, nil
}
