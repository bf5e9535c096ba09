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
// subjects docker.events.>, the given limits, a two-minute duplicate window.
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
	}
}

// EnsureStream creates the stream when it is missing and updates its limits
// (age, bytes, messages, replicas, duplicate window) when they differ from
// want, keeping its data and any other setting an operator made.
func EnsureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", want.Name, Explain(err))
		}
		log.Info("stream created", "stream", want.Name)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", want.Name, Explain(err))
	}
	have := s.CachedInfo().Config
	next := have
	next.MaxAge, next.MaxBytes, next.MaxMsgs = want.MaxAge, want.MaxBytes, want.MaxMsgs
	next.Replicas, next.Duplicates = want.Replicas, want.Duplicates
	if !next.AllowDirect {
		next.AllowDirect = true
	}
	if reflect.DeepEqual(have, next) {
		return s, nil
	}
	s, err = js.UpdateStream(ctx, next)
	if err != nil {
		return nil, fmt.Errorf("update stream %s limits: %w", want.Name, err)
	}
	log.Info("stream limits updated", "stream", want.Name, "max_age", next.MaxAge, "max_bytes", next.MaxBytes, "replicas", next.Replicas)
	return s, nil
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
