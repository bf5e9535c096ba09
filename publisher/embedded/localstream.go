package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/natsutil"
	"github.com/dockcast/dockcast/shared/subject"
)

// RecordBucket is the key-value bucket, in an edge node's own JetStream
// domain, that remembers every local stream name the node has used (key
// RecordKey), so that a local stream that disappeared is never made again
// under the same name.
const (
	RecordBucket = "DOCKCAST_EDGE"
	RecordKey    = "local_streams"
)

// LocalStream describes an edge node's local stream: R1, file storage, the
// node's own subjects (docker.events.<node>.>), the publisher's limits.
//
// It is never re-created in place: the central stream's source remembers
// how far it has read it, so a new stream of the same name is read from the
// old one's position until the server notices (nats-server 2.15 compares
// the stream's identity and starts over, measured here about 12 s later,
// at its source health check; older servers stall). A local stream that
// disappeared is made under a new name, <Central>_<Node>_<unix seconds>,
// and the central source moved to it (AttachSource), which needs neither.
type LocalStream struct {
	Central    string // the central stream's name (PUBLISHER_STREAM)
	Node       string // the node token
	MaxAge     time.Duration
	MaxBytes   int64
	Duplicates time.Duration
	// Taken, if set, reports whether the central stream already sources a
	// stream of this name from this node (CentralTaken asks it); such a
	// name is never used for a new stream. An error counts as taken, so a
	// node that starts for the first time while the centre is out of reach
	// gets a suffixed name, which is always safe. Nil: only this node's
	// own record counts.
	Taken func(ctx context.Context, name string) (bool, error)
	Now   func() time.Time // default time.Now
	Log   *slog.Logger
}

// Base is the local stream's first name, <Central>_<Node>.
func (l LocalStream) Base() string { return natsutil.LocalStreamName(l.Central, l.Node) }

// Config is the local stream's configuration under name.
func (l LocalStream) Config(name string) jetstream.StreamConfig {
	cfg := natsutil.StreamConfig(name, l.MaxAge, l.MaxBytes, 1)
	cfg.Description = "Docker Engine events of node " + l.Node + ", sourced by the central stream " + l.Central
	cfg.Subjects = []string{subject.Prefix + "." + l.Node + ".>"}
	if l.Duplicates > 0 {
		cfg.Duplicates = l.Duplicates
	}
	return cfg
}

// generation is 0 for the base name, the unix seconds of a later one, -1
// for a name that is not one of this node's local streams.
func (l LocalStream) generation(name string) int64 {
	rest, ok := strings.CutPrefix(name, l.Base())
	if !ok {
		return -1
	}
	if rest == "" {
		return 0
	}
	digits, ok := strings.CutPrefix(rest, "_")
	if !ok || len(digits) < 9 {
		return -1
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n <= 0 {
		return -1
	}
	return n
}

// EnsureLocalStream opens the node's current local stream (the newest one
// that exists), bringing its limits to l's, or, when none exists, creates
// one under a name this node has never used: the base name the first
// time, a suffixed one after a stream disappeared. made reports a new one,
// whose source the caller then attaches to the central stream.
func EnsureLocalStream(ctx context.Context, js jetstream.JetStream, l LocalStream) (s jetstream.Stream, made bool, err error) {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := natsutil.ValidEdgeNode(l.Node, ""); err != nil {
		return nil, false, fmt.Errorf("local stream: node %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RecordBucket, Description: "local stream names this dockcast edge node has used",
		History: 1, Storage: jetstream.FileStorage, Replicas: 1,
	})
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", RecordBucket, natsutil.Explain(err))
	}
	used, rev, err := readRecord(ctx, kv)
	if err != nil {
		return nil, false, err
	}
	current, err := l.newestExisting(ctx, js)
	if err != nil {
		return nil, false, err
	}
	if current != "" {
		s, err := l.applyLimits(ctx, js, current, log)
		if err != nil {
			return nil, false, err
		}
		if !slices.Contains(used, current) {
			if err := writeRecord(ctx, kv, append(used, current), rev); err != nil {
				return nil, false, err
			}
		}
		return s, false, nil
	}
	name := l.Base()
	if slices.Contains(used, name) || l.taken(ctx, name, true, log) {
		now := time.Now
		if l.Now != nil {
			now = l.Now
		}
		for sec := now().Unix(); ; sec++ {
			name = fmt.Sprintf("%s_%d", l.Base(), sec)
			if !slices.Contains(used, name) && !l.taken(ctx, name, false, log) {
				break
			}
		}
	}
	// Record first: a crash between the two leaves a name that is never
	// used, never a stream made again under a used name.
	if err := writeRecord(ctx, kv, append(used, name), rev); err != nil {
		return nil, false, err
	}
	s, err = js.CreateStream(ctx, l.Config(name))
	if err != nil {
		return nil, false, fmt.Errorf("create local stream %s: %w", name, natsutil.Explain(err))
	}
	if len(used) > 0 {
		log.Warn("local stream is missing: made a new one under a new name", "stream", name, "previous", used[len(used)-1])
	} else {
		log.Info("local stream created", "stream", name)
	}
	return s, true, nil
}

// taken asks l.Taken about name; when it cannot answer, unsure is the
// answer (true for the base name, which an earlier data directory may have
// used; false for a name made from the current time).
func (l LocalStream) taken(ctx context.Context, name string, unsure bool, log *slog.Logger) bool {
	if l.Taken == nil {
		return false
	}
	yes, err := l.Taken(ctx, name)
	if err != nil {
		if unsure {
			log.Info("cannot ask the central stream whether a local stream name is in use: taking a new name", "stream", name, "err", err)
		}
		return unsure
	}
	return yes
}

func (l LocalStream) newestExisting(ctx context.Context, js jetstream.JetStream) (string, error) {
	names := js.StreamNames(ctx)
	best, bestGen := "", int64(-1)
	for n := range names.Name() {
		if g := l.generation(n); g > bestGen {
			best, bestGen = n, g
		}
	}
	if err := names.Err(); err != nil {
		return "", fmt.Errorf("list local streams: %w", natsutil.Explain(err))
	}
	return best, nil
}

// applyLimits brings an existing local stream's limits and subjects to
// l's: the node's publisher is its only writer, so its settings apply.
func (l LocalStream) applyLimits(ctx context.Context, js jetstream.JetStream, name string, log *slog.Logger) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open local stream %s: %w", name, natsutil.Explain(err))
	}
	have := s.CachedInfo().Config
	want := l.Config(name)
	if have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes && have.Duplicates == want.Duplicates &&
		slices.Equal(have.Subjects, want.Subjects) {
		return s, nil
	}
	next := have
	next.MaxAge, next.MaxBytes, next.Duplicates, next.Subjects = want.MaxAge, want.MaxBytes, want.Duplicates, want.Subjects
	s, err = js.UpdateStream(ctx, next)
	if err != nil {
		return nil, fmt.Errorf("update local stream %s: %w", name, natsutil.Explain(err))
	}
	log.Info("local stream limits updated", "stream", name, "max_age", want.MaxAge, "max_bytes", want.MaxBytes, "duplicate_window", want.Duplicates)
	return s, nil
}

func readRecord(ctx context.Context, kv jetstream.KeyValue) ([]string, uint64, error) {
	e, err := kv.Get(ctx, RecordKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s/%s: %w", RecordBucket, RecordKey, natsutil.Explain(err))
	}
	return strings.Fields(string(e.Value())), e.Revision(), nil
}

func writeRecord(ctx context.Context, kv jetstream.KeyValue, names []string, rev uint64) error {
	val := []byte(strings.Join(names, "\n"))
	var err error
	if rev == 0 {
		_, err = kv.Create(ctx, RecordKey, val)
	} else {
		_, err = kv.Update(ctx, RecordKey, val, rev)
	}
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", RecordBucket, RecordKey, natsutil.Explain(err))
	}
	return nil
}

// CentralTaken is a LocalStream.Taken that asks the central stream (each
// question bounded by timeout).
func CentralTaken(central natsutil.Sources, node string, timeout time.Duration) func(context.Context, string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		srcs, err := central.OfNode(ctx, node)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(srcs, func(s jetstream.StreamSource) bool { return s.Name == name }), nil
	}
}

// AttachSource makes the central stream source the node's current local
// stream: every source of the node whose local stream no longer exists is
// moved to current (nothing of it is left to read), then current is added
// (a no-op when it is there). A source whose local stream still exists is
// left alone, so nothing it still holds is lost. Call it at start, after a
// new local stream was made, and now and then (see natsutil.Sources).
func AttachSource(ctx context.Context, local jetstream.JetStream, central natsutil.Sources, node, current string) error {
	srcs, err := central.OfNode(ctx, node)
	if err != nil {
		return err
	}
	want := natsutil.EdgeSource(node, current)
	for _, src := range srcs {
		if src.Name == current {
			continue
		}
		_, err := local.Stream(ctx, src.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			if err := central.Move(ctx, src, want); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("look up local stream %s: %w", src.Name, natsutil.Explain(err))
		}
	}
	return central.Add(ctx, want)
}
