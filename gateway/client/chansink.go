package client

import (
	"errors"
	"sync"
)

// ChanSink is a Sink for a transport that writes on a goroutine of its
// own, such as the HTTP handler of a streaming response (/sse, Docker's
// /events): the handler receives the frames from Frames, writes them, and
// calls Client.Sent for each. Frames holds the client's credits and the two
// slots of the closing frames, so Send never blocks.
type ChanSink struct {
	// Frames delivers the frames in order.
	Frames    chan []byte
	closed    chan struct{}
	aborted   chan struct{}
	closeOnce sync.Once
	abortOnce sync.Once
}

// NewChanSink makes a sink for a client whose Options.Credits is credits.
func NewChanSink(credits int) *ChanSink {
	return &ChanSink{Frames: make(chan []byte, credits+2), closed: make(chan struct{}), aborted: make(chan struct{})}
}

// errSinkFull: the client handed more frames than its credits (a bug).
var errSinkFull = errors.New("sink: more frames than credits")

// Send queues a frame; it fails once the sink is closed.
func (k *ChanSink) Send(frame []byte) error {
	select {
	case <-k.closed:
		return ErrClosed
	default:
	}
	select {
	case k.Frames <- frame:
		return nil
	default:
		return errSinkFull
	}
}

// Close marks the end: the frames sent before it are still in Frames.
func (k *ChanSink) Close(int, string) error {
	k.closeOnce.Do(func() { close(k.closed) })
	return nil
}

// Abort asks the transport to end at once.
func (k *ChanSink) Abort() { k.abortOnce.Do(func() { close(k.aborted) }) }

// Closed is closed by Close: write what is left in Frames, then end.
func (k *ChanSink) Closed() <-chan struct{} { return k.closed }

// Aborted is closed by Abort: end without writing more.
func (k *ChanSink) Aborted() <-chan struct{} { return k.aborted }
