package containerstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/subject"
)

// Contents is what a read of the bucket found: the states, and each
// node's watermark (nodes without one are absent).
type Contents struct {
	States  Set
	Applied map[string]Applied
}

// ReadBucket reads the newest value of every key of kv matching pattern
// (">" for all nodes, "<node>.*" for one). A watermark is read no later
// than the entries written before it: each key's value is the newest as of
// one consumer's start (or newer), and the first value seen of a
// watermark is kept, so every entry read reflects at least what that
// watermark says.
func ReadBucket(ctx context.Context, kv jetstream.KeyValue, pattern string) (Contents, error) {
	c := Contents{Applied: map[string]Applied{}}
	w, err := kv.Watch(ctx, pattern, jetstream.IgnoreDeletes())
	if err != nil {
		return c, fmt.Errorf("watch %s %s: %w", kv.Bucket(), pattern, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("read %s: %w", kv.Bucket(), ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return c, fmt.Errorf("read %s: the watch ended", kv.Bucket())
			}
			if e == nil { // every value present at the start was delivered
				return c, nil
			}
			key := e.Key()
			if node, ok := strings.CutSuffix(key, "._applied"); ok {
				if _, seen := c.Applied[node]; !seen {
					var a Applied
					if err := json.Unmarshal(e.Value(), &a); err != nil {
						return c, fmt.Errorf("read %s %s: %w", kv.Bucket(), key, err)
					}
					c.Applied[node] = a
				}
				continue
			}
			st, err := Decode(e.Value())
			if err != nil {
				return c, fmt.Errorf("read %s %s: %w", kv.Bucket(), key, err)
			}
			c.States.Put(st)
		}
	}
}

// Fold reads the events of node stored in stream after `after` up to and
// including `upTo` (0: the node's last event now), in order, and calls fn
// for each; it returns the sequence of the last event of the node it read
// (or `after` when there was none).
func Fold(ctx context.Context, stream jetstream.Stream, node string, after, upTo uint64, fn func(seq uint64, e *event.Event)) (uint64, error) {
	last, err := stream.GetLastMsgForSubject(ctx, subject.Node(node))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return after, nil
	}
	if err != nil {
		return after, fmt.Errorf("last event of %s: %w", node, err)
	}
	if upTo == 0 || last.Sequence < upTo {
		upTo = last.Sequence
	}
	if upTo <= after {
		return after, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject.Node(node)}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: after + 1, InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return after, fmt.Errorf("read %s from %d: %w", node, after+1, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	done, waited := after, false
	for done < upTo {
		// What is stored is there at once: no wait, unless nothing came.
		var batch jetstream.MessageBatch
		if waited {
			batch, err = cons.Fetch(512, jetstream.FetchMaxWait(time.Second))
		} else {
			batch, err = cons.FetchNoWait(512)
		}
		if err != nil {
			return done, fmt.Errorf("read %s from %d: %w", node, done+1, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return done, fmt.Errorf("read %s: %w", node, err)
			}
			seq := md.Sequence.Stream
			if seq > upTo {
				return done, nil
			}
			done = seq
			if e, err := event.Decode(m.Data()); err == nil {
				fn(seq, &e)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return done, fmt.Errorf("read %s from %d: %w", node, done+1, err)
		}
		waited = n == 0
		if n == 0 {
			if ctx.Err() != nil {
				return done, ctx.Err()
			}
			// Nothing within the wait: what is left up to upTo aged out.
			info, err := stream.Info(ctx)
			if err != nil {
				return done, fmt.Errorf("stream info: %w", err)
			}
			if info.State.FirstSeq > upTo {
				return upTo, nil
			}
		}
	}
	return done, nil
}

// EnsureBucket opens the bucket of container states beside stream,
// creating it (file storage, one value per key) when it is missing.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, stream string, replicas int) (jetstream.KeyValue, error) {
	name := Bucket(stream)
	kv, err := js.KeyValue(ctx, name)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open bucket %s: %w", name, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "State of every container, kept by the dockcast publishers from the events of stream " + stream,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return js.KeyValue(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", name, err)
	}
	return kv, nil
}
