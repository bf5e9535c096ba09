package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/testkit"
)

// pubNode is the node of the publisher under test.
const pubNode = "pubbench"

// publisherBench compares raw acknowledged async publishes of bench
// payloads with bin/publisher's whole pipeline (the stand-in engine's
// /events read, queued, published with acks), both into the shared
// nats-server and its stream.
func (o *orchestrator) publisherBench(ctx context.Context) *publisherResult {
	n := o.sc.PubEvents
	r := &publisherResult{Events: n, RawPayload: payloadSize()}
	o.logf("publisher: raw: %d acknowledged async publishes of prebuilt payloads", n)
	msgs, err := o.pub.prebuilt(n)
	if err != nil {
		r.Err = "raw: " + err.Error()
		return r
	}
	first, acked, err := o.pub.publishAll(ctx, msgs)
	if err != nil {
		r.Err = "raw: " + err.Error()
		return r
	}
	r.Raw = acked.Sub(first)

	o.logf("publisher: pipeline: %d events from the stand-in engine through bin/publisher", n)
	// The stand-in engine is a test helper (it takes a testing.TB):
	// testing.Benchmark gives it one outside `go test`. The closure runs
	// once; a second call (the driver asking for more iterations) returns
	// at once.
	ran := false
	var runErr error
	testing.Benchmark(func(b *testing.B) {
		if ran {
			return
		}
		ran = true
		runErr = o.pipeline(ctx, b, r)
	})
	if !ran {
		runErr = errors.New("the benchmark driver did not run the pipeline")
	}
	if runErr != nil {
		r.Err = "pipeline: " + runErr.Error()
	}
	return r
}

// pipelineWindow bounds the events emitted and not yet stored: the
// engine is driven as a closed loop, so that the pipeline runs at the rate
// it sustains without its queue (10,000 events) overflowing; raw
// publishes have as many in flight.
const pipelineWindow = 4096

// pipeline runs bin/publisher against a stand-in engine and times n
// events from the first emitted to the last stored.
func (o *orchestrator) pipeline(ctx context.Context, b *testing.B, r *publisherResult) error {
	n := r.Events
	mem := 0 // the engine's default, Docker's 256
	if o.pipelineOpen {
		// Open loop: the engine emits as fast as the publisher reads and
		// remembers the whole run, so that a resume after a queue
		// overflow finds everything.
		mem = n + 1024
	}
	eng := testkit.StartFakeEngine(b, testkit.FakeEngineOptions{Name: pubNode, Memory: mem})
	port, err := freePort()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	bin := o.publisherBin
	if bin == "" {
		bin = filepath.Join(o.root, "bin", "publisher")
	}
	p, err := startChild("publisher", o.dir, bin, nil, []string{
		"NATS_URL=" + o.natsURL, "DOCKER_HOST=" + eng.Host, "PUBLISHER_NODE=" + pubNode,
		"PUBLISHER_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port), "LOG_LEVEL=warn",
	})
	if err != nil {
		return err
	}
	defer p.stop()
	if err := waitHTTP(ctx, p, base+"/readyz", time.Minute); err != nil {
		return err
	}
	subj := "docker.events." + pubNode + ".container.>"
	stored := func() (uint64, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := o.js.Stream(cctx, streamName)
		if err != nil {
			return 0, err
		}
		info, err := s.Info(cctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return 0, err
		}
		var sum uint64
		for _, c := range info.State.Subjects {
			sum += c
		}
		return sum, nil
	}
	before, err := stored()
	if err != nil {
		return err
	}
	attrs := map[string]string{}
	for k, v := range composeAttrs {
		attrs[k] = v
	}
	var done atomic.Int64 // events stored so far in this run
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	emitted := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			for !o.pipelineOpen && int64(i)-done.Load() >= pipelineWindow {
				if ectx.Err() != nil {
					emitted <- ectx.Err()
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
			eng.Emit(testkit.Container("start", fmt.Sprintf("%064x", i+1), "shop-api-1", attrs))
		}
		emitted <- nil
	}()
	deadline := time.Now().Add(10 * time.Minute)
	var emitDone time.Duration
	last, lastChange := before, time.Now()
	for {
		select {
		case err := <-emitted:
			if err != nil {
				return fmt.Errorf("emit: %w", err)
			}
			emitDone = time.Since(start)
			emitted = nil
		default:
		}
		got, err := stored()
		if err != nil {
			return err
		}
		done.Store(int64(got - before))
		if got-before >= uint64(n) {
			r.Pipeline = time.Since(start)
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		if stalled := time.Since(lastChange) > 20*time.Second; stalled || time.Now().After(deadline) || p.exited() {
			r.Dropped, r.Streams = eng.Dropped(), eng.Streams()
			return fmt.Errorf("%d of %d events stored (nothing new for 20 s: %v; publisher exited: %v); the engine dropped %d events for a slow reader and served %d /events streams",
				got-before, n, stalled, p.exited(), r.Dropped, r.Streams)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if emitDone == 0 {
		if err := <-emitted; err != nil {
			return fmt.Errorf("emit: %w", err)
		}
		emitDone = time.Since(start)
	}
	r.Emitted = emitDone
	r.Dropped = eng.Dropped()
	r.Streams = eng.Streams()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if s, err := o.js.Stream(cctx, streamName); err == nil {
		if m, err := s.GetLastMsgForSubject(cctx, subj); err == nil {
			r.PipelinePayload = len(m.Data)
		}
	}
	if got, err := stored(); err == nil && got-before != uint64(n) {
		return fmt.Errorf("%d events stored for %d emitted", got-before, n)
	}
	return nil
}
