package stream_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/publisher/stream"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// A burst is written with batches sent ahead of the acknowledgement of
// the ones before them; each event is stored once, in order, at the
// sequence Stored reports.
func TestWriterPipelinesBatchesInOrder(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), nil, func(w *stream.Writer) { w.MaxBatch = 100 })
	evs := synthetic("p", 0, 20000)
	h.push(t, evs...)
	h.drain(t)
	checkStream(t, h.js, evs)
	for i, e := range evs {
		if seq := h.stored[e.ID]; seq != uint64(i+1) {
			t.Fatalf("Stored gave event %d sequence %d, the stream %d", i, seq, i+1)
		}
	}
	ahead, refused := stream.PipelineCounts(h.w)
	if ahead < 10 || refused != 0 {
		t.Fatalf("%d batches sent ahead, %d refused: want many pipelined, none refused", ahead, refused)
	}
}

// The server's acknowledgements are lost while windows of batches are in
// flight (the server stores them all): for a moment (some of a window's
// acknowledgements lost, later ones not), then for longer than the
// writer's acknowledgement timeout. None is stored twice, none lost, the
// order kept; then the link carries replies again and the rest follows.
func TestWriterPipelineAcksLost(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	proxy := testkit.StartTCPProxy(t, ns.Addr().String())
	h := startWriter(t, "nats://"+proxy.Addr, nil, func(w *stream.Writer) { w.MaxBatch = 50 })
	evs := synthetic("l", 0, 30000)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		// Short losses first (some acknowledgements of a window lost,
		// later ones not: a batch is found stored by the one after it),
		// then one longer than the acknowledgement timeout (1 s).
		for range 8 {
			time.Sleep(150 * time.Millisecond)
			proxy.DropReplies(true)
			time.Sleep(15 * time.Millisecond)
			proxy.DropReplies(false)
		}
		proxy.DropReplies(true)
		time.Sleep(2500 * time.Millisecond)
		proxy.DropReplies(false)
	}()
	for i := 0; i < len(evs) && ctx.Err() == nil; i += 500 {
		h.push(t, evs[i:min(i+500, len(evs))]...)
		time.Sleep(10 * time.Millisecond)
	}
	h.drain(t)
	checkStream(t, h.js, evs)
	if ahead, _ := stream.PipelineCounts(h.w); ahead == 0 {
		t.Fatal("no batch was sent ahead: the test did not exercise the pipeline")
	}
	if got := testutilValue(t, h.m, "dockcast_publisher_publish_errors_total"); got == 0 {
		t.Fatal("no batch went unacknowledged: the replies were not lost while batches were in flight")
	}
}

// Another node's publisher writes into the same stream between this
// writer's batches: batches sent ahead are refused (their expectation
// does not hold), recovered without loss or duplicates, and the writer
// stops sending ahead after a few refusals.
func TestWriterPipelineStopsWhenAnotherWriterInterleaves(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	h := startWriter(t, ns.ClientURL(), nil, func(w *stream.Writer) { w.MaxBatch = 20 })
	other, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ojs, _ := jetstream.New(other)
	var stop atomic.Bool
	otherDone := make(chan int, 1)
	go func() {
		n := 0
		for !stop.Load() {
			e := event.New("other", "container", "start", "", fmt.Sprintf("o%d", n), nil, time.Unix(1_700_000_000, int64(n)))
			data, _ := e.Marshal()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := ojs.Publish(ctx, e.Subject(), data); err == nil {
				n++
			}
			cancel()
			time.Sleep(50 * time.Millisecond) // now and then, between this writer's batches
		}
		otherDone <- n
	}()
	evs := synthetic("i", 0, 20000)
	for i := 0; i < len(evs); i += 1000 {
		h.push(t, evs[i:i+1000]...)
	}
	h.drain(t)
	stop.Store(true)
	<-otherDone
	got := readNode(t, h.js, "i")
	if len(got) != len(evs) {
		t.Fatalf("%d events of the node stored, want %d", len(got), len(evs))
	}
	for i := range evs {
		if got[i] != evs[i].ID {
			t.Fatalf("event %d is %s, want %s", i, got[i], evs[i].ID)
		}
	}
	ahead, refused := stream.PipelineCounts(h.w)
	if refused < 1 || refused > 3 {
		t.Fatalf("%d batches sent ahead (%d refused): want some refused, and the pipeline stopped after 3", ahead, refused)
	}
}

// readNode returns the ids of node's events in the stream, in order.
func readNode(t *testing.T, js jetstream.JetStream, node string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, "DOCKER_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("docker.events."+node+".>"))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"docker.events." + node + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for uint64(len(ids)) < want {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			e, err := event.Decode(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
			n++
		}
		if n == 0 {
			t.Fatalf("fetch returned nothing after %d of %d", len(ids), want)
		}
	}
	return ids
}
