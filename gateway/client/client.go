package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockcast/dockcast/gateway/auth"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/subject"
)

// ErrClosed is returned once the client is closed.
var ErrClosed = errors.New("client closed")

// Options size a client's buffers. Zero values take the defaults.
type Options struct {
	// MaxQueueBytes bounds the frames waiting for the client (default 1 MiB).
	MaxQueueBytes int
	// Credits is how many frames the sink holds at once, besides the two
	// it must keep for the closing error frame and the close (default 6;
	// the transports pass their own, the WebSocket one its melody buffer
	// less those two).
	Credits int
	// CloseTimeout is how long a close may take before the connection is
	// aborted under it (default 5s).
	CloseTimeout time.Duration
	// BookmarkInterval is how long a live client may go without being
	// handed a frame before it gets {"type":"bookmark","seq":N} (default
	// DefaultBookmarkInterval; negative: never, for transports without
	// bookmarks such as Docker's /events).
	BookmarkInterval time.Duration
	// Batch (the batch=1 parameter) hands the sink one frame at a time,
	// made of every frame queued when the previous one was written,
	// newline-separated, up to MaxBatchBytes (a larger frame goes alone).
	Batch bool
	// Backlog, when set, is the live feed's memory of recent messages: a
	// client that falls MaxQueueBytes behind stops queueing live frames
	// and is refilled from it as it drains (see Backlog); without it, the
	// client ends as a slow consumer at once.
	Backlog Backlog
	// OnLag, optional, is called (without locks held) each time a client
	// starts lagging (Backlog).
	OnLag func()
}

// Backlog is the live feed's memory of the stream's recent messages (the
// hub's ring), shared by every client. A live client whose queue would pass
// MaxQueueBytes stops queueing live frames ("lagging") and, each time its
// transport has drained the queue to a quarter, is refilled from the
// backlog, filter applied, until it has caught up with the live feed:
// a burst is held once for every client, not once per client. A lagging
// client that falls behind what the backlog still holds ends as a slow
// consumer, with the first event it was not sent as resume_from_seq.
type Backlog interface {
	// Backlog calls fn with each message of the stream's incarnation epoch
	// from sequence from on, in order, up to the last one the live feed
	// delivered, while fn returns true (the frames are shared: read only).
	// next is the sequence after the last message fn took (after a whole
	// walk: one past the last the live feed delivered, which may be an
	// invalid message the backlog does not keep). ok is false when the
	// backlog no longer holds from, or epoch is not the live feed's.
	Backlog(epoch string, from uint64, fn func(seq uint64, subj string, ev *event.Event, frame []byte) bool) (next uint64, ok bool)
	// BacklogFrom is the first sequence the backlog holds (0: none yet);
	// it only grows, until the stream is reset.
	BacklogFrom() uint64
}

// DefaultBookmarkInterval is the contract's 30 s of silence before a bookmark.
const DefaultBookmarkInterval = 30 * time.Second

// MaxBatchBytes bounds a batched frame (Options.Batch).
const MaxBatchBytes = 64 << 10

// Defaults fills zero fields.
func (o Options) Defaults() Options {
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 1 << 20
	}
	if o.Credits <= 0 {
		o.Credits = 6
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.BookmarkInterval == 0 {
		o.BookmarkInterval = DefaultBookmarkInterval
	}
	return o
}

// Sink is a transport's writer for one connection. Its methods must not
// block: the transport writes what it is handed in order, on its own
// goroutine, and calls Client.Sent after each frame is written.
type Sink interface {
	// Send hands one frame to the transport.
	Send(frame []byte) error
	// Close hands the transport a close with code and reason, written
	// after the frames sent before it; then the connection ends.
	Close(code int, reason string) error
	// Abort ends the connection at once (a close that could not be written).
	Abort()
}

// TrainSink is a Sink that can write several frames in one go: a client
// without Options.Batch hands it, while frames wait, one train at a time
// (the frames queued when the previous train was written, up to
// MaxBatchBytes): the first frame's payload, as Send would take it, and
// the frames after it already framed as WebSocket text frames (RFC 6455,
// server to client: unmasked, FIN set), to be written right after the
// first. The client sees the frames it would see without trains, in the
// same order, one per WebSocket frame; the transport pays for one hand-off
// and one write per train instead of one per frame.
type TrainSink interface {
	Sink
	// SendTrain hands the transport first, then rest (n frames in all,
	// of size payload bytes without the headers); Sent or Written(first)
	// reports the whole train written.
	SendTrain(first, rest []byte, n, size int) error
}

// AppendTextFrameHeader appends the header of an unmasked, final
// WebSocket text frame of n payload bytes (RFC 6455 §5.2).
func AppendTextFrameHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		return append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		for i := 7; i >= 0; i-- {
			b = append(b, byte(uint64(n)>>(8*i)))
		}
		return b
	}
}

func textFrameHeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// Spec is what admission decided about a client.
type Spec struct {
	// Filter is the client's filter; Subjects the subject filters that
	// cover its matches, narrowed to what the token may read.
	Filter   filter.Filter
	Subjects []string
	// Patterns are the subject patterns the client's token may read; nil
	// (anonymous) means everything.
	Patterns []string
	// Exact reports that every subject in Subjects lies within Patterns;
	// otherwise each event's subject is checked against Patterns.
	Exact bool
	// Token identifies the client's token (zero when anonymous).
	Token auth.ID
	// OnSlow, optional, is called (without locks held) when the client
	// ends as a slow consumer.
	OnSlow func(resume uint64)
}

// Position is the live feed's progress: the highest sequence every joined
// client has been offered (and its filter checked against). The hub
// stores it after offering a message to every client.
type Position struct{ v atomic.Uint64 }

// Load returns the position.
func (p *Position) Load() uint64 { return p.v.Load() }

// Store sets the position.
func (p *Position) Store(seq uint64) { p.v.Store(seq) }

type item struct {
	seq  uint64 // stream sequence of an event frame, 0 for other frames
	data []byte
}

type phase int

const (
	joining   phase = iota // not in the hub yet
	buffering              // replaying: live events wait in pending
	live
)

// ending is how a closed client's connection ends.
type ending struct {
	frame []byte // error frame, nil for none
	code  int
	text  string
}

// Client is one connection's state. Its methods are safe for concurrent
// use and never block, except WaitRoom.
type Client struct {
	// Spec is read-only after New.
	Spec Spec
	opts Options

	mu         sync.Mutex
	sink       Sink
	trains     TrainSink // sink, when it takes trains and the client is not batched
	phase      phase
	closed     bool
	end        *ending
	epoch      string
	feed       *Position // live: the hub's position
	liveFrom   uint64    // buffering: first live sequence held back
	minSeq     uint64    // events below are never sent (from_seq)
	queue      []item    // frames not yet handed to the sink
	head       int
	pending    []item // live events held back during the replay
	queued     int    // bytes in queue[head:] and pending
	mainBytes  int    // bytes in queue[head:]
	handed     uint64 // frames handed to the sink
	sent       uint64 // frames the transport reported written
	lastLive   uint64 // last live sequence accepted
	replayNext uint64 // next sequence the replay reads
	room       chan struct{}
	done       chan struct{}
	timer      *time.Timer
	lastHand   time.Time   // live: when a frame was last handed to the sink
	batchBuf   *[]byte     // batch: the buffer of the batched frame in flight
	bookmark   *time.Timer // live: fires when the client may be idle
	lagging    bool        // live events are not queued: refill reads them from the backlog
	lagNext    uint64      // lagging: the first sequence not queued
}

// New makes a client.
func New(spec Spec, opts Options) *Client {
	return &Client{Spec: spec, opts: opts.Defaults(), room: make(chan struct{}, 1), done: make(chan struct{})}
}

// Attach binds the transport's sink and hands it what is already queued
// (or the close, for a client closed before).
func (c *Client) Attach(s Sink) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sink = s
	if ts, ok := s.(TrainSink); ok && !c.opts.Batch {
		c.trains = ts
	}
	if c.closed {
		c.sendEnd()
		return
	}
	c.flush()
}

// Done is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Context returns a context derived from parent that also ends when the
// client is closed (work done for the client stops with it); cancel
// releases it.
func (c *Client) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Closed reports whether the client is closed.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Epoch is the epoch of the stream the client follows ("" before it joins).
func (c *Client) Epoch() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// Wants reports whether an event on subj is for this client: its filter
// matches and its token may read the subject.
func (c *Client) Wants(subj string, ev *event.Event) bool {
	if !c.Spec.Filter.Match(ev) {
		return false
	}
	return c.Spec.Exact || c.Spec.Patterns == nil || auth.Matches(c.Spec.Patterns, subj)
}

// MayReadNode reports whether the client may see node's status: anonymous
// clients see every node; a token's client only nodes whose whole subject
// space docker.events.<node>.> one of its patterns covers.
func (c *Client) MayReadNode(node string) bool {
	return c.Spec.Patterns == nil || auth.Allowed(c.Spec.Patterns, []string{subject.Node(node)}) == nil
}

// JoinLive queues the status frames and {"type":"live","seq":seq}; the
// client then takes live events after seq, and its checked position
// follows feed. It reports false when the client is closed.
func (c *Client) JoinLive(statuses [][]byte, seq uint64, epoch string, feed *Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.epoch, c.feed, c.phase, c.lastLive = epoch, feed, live, seq
	for _, s := range statuses {
		c.push(item{data: s})
	}
	c.push(item{data: LiveFrame(seq, epoch)})
	c.flush()
	c.checkOverflow()
	c.armBookmark()
	return !c.closed
}

// JoinBuffering queues the status frames and holds back live events from
// liveFrom on until GoLive. The replay reads from next; events below
// minSeq are never sent; feed is the live feed's position.
func (c *Client) JoinBuffering(statuses [][]byte, liveFrom, next, minSeq uint64, epoch string, feed *Position) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.epoch, c.phase, c.feed = epoch, buffering, feed
	c.liveFrom, c.replayNext, c.minSeq, c.lastLive = liveFrom, next, minSeq, liveFrom-1
	for _, s := range statuses {
		c.push(item{data: s})
	}
	c.flush()
	c.checkOverflow()
	return !c.closed
}

// Live offers a live event frame. Sequences at or below the last one
// accepted are ignored, so that no sequence is sent twice.
func (c *Client) Live(seq uint64, frame []byte) {
	c.mu.Lock()
	if c.closed || seq <= c.lastLive || seq < c.minSeq {
		c.mu.Unlock()
		return
	}
	if c.lagging {
		// The refill reads it from the backlog; unless the backlog no
		// longer holds the client's place.
		slow := c.checkBacklog()
		if slow == nil {
			slow = c.refillIdle()
		}
		c.mu.Unlock()
		if slow != nil {
			slow()
		}
		return
	}
	if c.opts.Backlog != nil && c.queued+len(frame) > c.opts.MaxQueueBytes {
		c.lagging, c.lagNext = true, seq
		slow := c.refillIdle()
		c.mu.Unlock()
		if c.opts.OnLag != nil {
			c.opts.OnLag()
		}
		if slow != nil {
			slow()
		}
		return
	}
	c.lastLive = seq
	it := item{seq: seq, data: frame}
	if c.phase == buffering {
		c.pending = append(c.pending, it)
		c.queued += len(frame)
	} else {
		c.push(it)
		c.flush()
	}
	slow := c.checkOverflow()
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
}

// Status queues a status frame.
func (c *Client) Status(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.push(item{data: frame})
	c.flush()
	slow := c.checkOverflow()
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
}

// SetReplayNext records the next sequence the replay reads (it skipped
// what comes before: messages the filter or the token drops, or that aged
// out).
func (c *Client) SetReplayNext(seq uint64) {
	c.mu.Lock()
	c.replayNext = max(c.replayNext, seq)
	c.mu.Unlock()
}

// Replay queues a replayed frame (an event when seq > 0) without waiting.
// It reports whether there is room for more: false once the queue is half
// full (then the replay lets go of its slot and calls WaitRoom) or the
// client is closed. The replay paces itself by it, so its frames never
// make the client a slow consumer.
func (c *Client) Replay(seq uint64, frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.push(item{seq: seq, data: frame})
	if seq > 0 {
		c.replayNext = seq + 1
	}
	c.flush()
	return c.mainBytes <= c.opts.MaxQueueBytes/2
}

// HasRoom reports whether the replay may queue more now.
func (c *Client) HasRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.mainBytes <= c.opts.MaxQueueBytes/2
}

// WaitRoom waits until the client has drained its queue to a quarter of
// MaxQueueBytes. It returns ErrClosed once the client is closed, or the
// context's error.
func (c *Client) WaitRoom(ctx context.Context) error {
	for {
		c.mu.Lock()
		closed, ok := c.closed, c.mainBytes <= c.opts.MaxQueueBytes/4
		c.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case ok:
			return nil
		}
		select {
		case <-c.room:
		case <-c.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// GoLive ends the replay: it queues {"type":"live","seq":seq}, then the live
// events held back, and lets later live events through.
func (c *Client) GoLive(seq uint64) {
	c.mu.Lock()
	if c.closed || c.phase != buffering {
		c.mu.Unlock()
		return
	}
	c.push(item{data: LiveFrame(seq, c.epoch)})
	for _, it := range c.pending {
		c.queue = append(c.queue, it)
		c.mainBytes += len(it.data)
	}
	c.pending = nil
	c.phase = live
	c.flush()
	slow := c.checkOverflow()
	if slow == nil {
		slow = c.refill()
	}
	c.armBookmark()
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
}

// Sent is called by the transport after each frame is written: one more
// frame fits in the sink.
func (c *Client) Sent() { c.written(nil) }

func (c *Client) written(frame []byte) {
	c.mu.Lock()
	if bp := c.batchBuf; bp != nil && len(frame) > 0 && len(*bp) > 0 && &frame[0] == &(*bp)[0] {
		c.batchBuf = nil
		*bp = (*bp)[:0]
		batchPool.Put(bp)
	}
	c.sent++
	c.flush()
	slow := c.refill()
	roomy := c.mainBytes <= c.opts.MaxQueueBytes/4
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
	if roomy {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

// End closes the client with code: its error frame (with resume_from_seq
// and epoch where the code carries them; none for Shutdown) and close
// code. reason is the frame's message; for codes that resume, how to go on
// is added to it.
func (c *Client) End(code Code, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(code, reason)
}

// Reset closes the client with stream_reset, naming the stream's new epoch.
func (c *Client) Reset(epoch, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.epoch = epoch
	}
	c.endLocked(StreamReset, reason)
}

// Disconnected is called by the transport when the connection is gone.
func (c *Client) Disconnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	c.drop()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.stopBookmark()
}

// Checked is the highest sequence the client's filter has been checked
// against with nothing for it left unsent (bookmarks; resume_from_seq is
// one more).
func (c *Client) Checked() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkedLocked()
}

// Stats reports frames handed to the sink and written, and queued bytes.
func (c *Client) Stats() (handed, sent uint64, queued int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handed, c.sent, c.queued
}

func (c *Client) push(it item) {
	c.queue = append(c.queue, it)
	c.queued += len(it.data)
	c.mainBytes += len(it.data)
}

// flush hands queued frames to the sink while it has credit: the one
// place where frames leave the client. c.mu is held.
func (c *Client) flush() {
	if c.sink == nil || c.closed {
		return
	}
	limit := uint64(c.opts.Credits)
	if c.opts.Batch || c.trains != nil {
		// One frame (or train) at a time: what queues up meanwhile goes
		// in the next.
		limit = 1
	}
	if c.head < len(c.queue) && c.handed-c.sent < limit && c.bookmark != nil {
		c.lastHand = time.Now()
	}
	for c.head < len(c.queue) && c.handed-c.sent < limit {
		var err error
		if c.trains != nil {
			first, rest, n, size := c.nextTrain()
			if n > 1 {
				err = c.trains.SendTrain(first, rest, n, size)
			} else {
				err = c.sink.Send(first)
			}
		} else {
			err = c.sink.Send(c.next())
		}
		if err != nil {
			return // the connection is closing; Disconnected follows
		}
		c.handed++
	}
	if c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
		if cap(c.queue) > 1024 {
			c.queue = nil
		}
	} else if c.head > 256 && c.head > len(c.queue)/2 {
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
}

// Buffers gives TakeQueued a buffer to append to (an empty one, with
// room for MaxBatchBytes).
type Buffers interface {
	Buffer() []byte
}

// TakeQueued is for a TrainSink writing the frame the client handed it
// (one is in flight): it appends to a buffer from into (asked only when
// there is a frame to take) the frames queued since, up to room
// bytes with their headers, framed as a train's rest is
// (AppendTextFrameHeader), and takes them off the queue: the transport
// writes them right after that frame, in the same system call, and its
// Written reports them with it. n is their count and payload their size
// without headers (buf nil: none). A frame that would not fit stays
// queued (and so does everything after it); a batched client, or one not
// attached to a TrainSink, takes none.
func (c *Client) TakeQueued(into Buffers, room int) (buf []byte, n, payload int) {
	if c.opts.Batch {
		return nil, 0, 0 // without taking the lock: batched frames are joined by next
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trains == nil || c.closed || c.handed-c.sent != 1 {
		return nil, 0, 0
	}
	for c.head < len(c.queue) {
		d := len(c.queue[c.head].data)
		if textFrameHeaderLen(d)+d > room {
			break
		}
		room -= textFrameHeaderLen(d) + d
		f := c.take()
		if buf == nil {
			buf = into.Buffer()
		}
		buf = AppendTextFrameHeader(buf, len(f))
		buf = append(buf, f...)
		n++
		payload += len(f)
	}
	if n > 0 {
		if c.head == len(c.queue) {
			c.queue, c.head = c.queue[:0], 0
		}
		if c.bookmark != nil {
			c.lastHand = time.Now()
		}
	}
	return buf, n, payload
}

// take removes the queue's first frame. c.mu is held.
func (c *Client) take() []byte {
	data := c.queue[c.head].data
	c.queue[c.head] = item{}
	c.head++
	c.queued -= len(data)
	c.mainBytes -= len(data)
	return data
}

// next takes the next frame to hand the sink off the queue: the first
// queued frame, or in batch mode as many as fit in MaxBatchBytes, joined
// by newlines (frames hold no newline: see EventFrame). c.mu is held.
func (c *Client) next() []byte {
	first := c.take()
	if !c.opts.Batch {
		return first
	}
	n, end := len(first), c.head
	for end < len(c.queue) && n+1+len(c.queue[end].data) <= MaxBatchBytes {
		n += 1 + len(c.queue[end].data)
		end++
	}
	if end == c.head {
		return first
	}
	bp := batchPool.Get().(*[]byte)
	b := append((*bp)[:0], first...)
	for c.head < end {
		b = append(b, '\n')
		b = append(b, c.take()...)
	}
	*bp = b
	c.batchBuf = bp
	return b
}

// nextTrain takes the next train off the queue (TrainSink): the first
// frame, and the frames queued after it that fit in MaxBatchBytes with
// their WebSocket headers, framed. A frame over MaxBatchBytes goes alone;
// so does the first frame when none follows. c.mu is held.
func (c *Client) nextTrain() (first, rest []byte, n, payload int) {
	if d := len(c.queue[c.head].data); d > MaxBatchBytes {
		return c.take(), nil, 1, d
	}
	size, end := len(c.queue[c.head].data), c.head+1
	for end < len(c.queue) {
		d := len(c.queue[end].data)
		if size+textFrameHeaderLen(d)+d > MaxBatchBytes {
			break
		}
		size += textFrameHeaderLen(d) + d
		end++
	}
	if end == c.head+1 {
		f := c.take()
		return f, nil, 1, len(f)
	}
	bp := batchPool.Get().(*[]byte)
	b := append((*bp)[:0], c.take()...)
	split := len(b)
	n, payload = 1, split
	for c.head < end {
		d := c.take()
		b = AppendTextFrameHeader(b, len(d))
		b = append(b, d...)
		n++
		payload += len(d)
	}
	*bp = b
	c.batchBuf = bp
	return b[:split], b[split:], n, payload
}

// batchPool holds the buffers of batched frames (Options.Batch) between
// two writes: Written gives them back.
var batchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, MaxBatchBytes)
	return &b
}}

// Written is Sent for a transport that can tell which frame was written:
// a batched frame's buffer is then reused for the next batch.
func (c *Client) Written(frame []byte) { c.written(frame) }

// checkOverflow ends the client as a slow consumer when its queue is over
// the limit; it returns the hook to call once c.mu is released.
func (c *Client) checkOverflow() func() {
	limit := c.opts.MaxQueueBytes
	if c.opts.Backlog != nil {
		// Live events never take the queue past the bound (they lag
		// instead); what a replay queued beside the live events held back
		// (up to half the bound) and status frames may.
		limit *= 2
	}
	if c.closed || c.queued <= limit {
		return nil
	}
	return c.slowLocked(fmt.Sprintf("the client fell more than %d bytes behind", c.opts.MaxQueueBytes))
}

// slowLocked ends the client as a slow consumer; it returns the OnSlow
// hook to call once c.mu is released. c.mu is held.
func (c *Client) slowLocked(reason string) func() {
	resume := c.resumeLocked()
	c.endLocked(SlowConsumer, reason)
	if c.Spec.OnSlow == nil {
		return nil
	}
	return func() { c.Spec.OnSlow(resume) }
}

// behindBacklog is the slow_consumer message of a lagging client that fell
// behind the backlog.
const behindBacklog = "the client fell behind the recent messages the gateway holds"

// checkBacklog ends a lagging client as a slow consumer when the backlog
// no longer holds its place; it returns the hook to call once c.mu is
// released. c.mu is held.
func (c *Client) checkBacklog() func() {
	if c.closed || !c.lagging {
		return nil
	}
	if from := c.opts.Backlog.BacklogFrom(); from != 0 && c.lagNext >= from {
		return nil
	}
	return c.slowLocked(behindBacklog)
}

// refill queues, from the backlog, what a lagging client missed once its
// queue has drained to a quarter, up to half the queue's bound, filter and
// token rights applied as the live feed's subject index and group match
// would; when it reaches the live feed's position the client is live
// again. c.mu is held, so that no live event slips between the walk's end
// and the switch: the hub adds a message to the backlog before it offers
// it, and offers it under c.mu (see Backlog). It returns the hook to call
// once c.mu is released.
func (c *Client) refill() func() {
	if !c.lagging || c.closed || c.phase != live || c.mainBytes > c.opts.MaxQueueBytes/4 {
		return nil
	}
	whole := true
	next, ok := c.opts.Backlog.Backlog(c.epoch, c.lagNext, func(seq uint64, subj string, ev *event.Event, frame []byte) bool {
		if c.mainBytes > 0 && c.mainBytes+len(frame) > c.opts.MaxQueueBytes/2 {
			whole = false
			return false
		}
		if seq >= c.minSeq && c.Selects(subj, ev) {
			c.push(item{seq: seq, data: frame})
		}
		return true
	})
	if !ok {
		return c.slowLocked(behindBacklog)
	}
	c.lagNext = max(c.lagNext, next)
	if whole {
		c.lagging = false
		c.lastLive = max(c.lastLive, c.lagNext-1)
	}
	c.flush()
	return nil
}

// refillIdle refills a lagging live client that has nothing in flight: no
// written frame would start the refill (a frame larger than the queue's
// bound lags a client with an empty queue). c.mu is held.
func (c *Client) refillIdle() func() {
	if c.sink == nil || c.handed != c.sent {
		return nil
	}
	return c.refill()
}

// Selects reports whether a message of the stream, on any subject, is for
// this client: its subjects (narrowed to its token) cover subj and Wants.
func (c *Client) Selects(subj string, ev *event.Event) bool {
	return auth.Matches(c.Spec.Subjects, subj) && c.Wants(subj, ev)
}

// resumeLocked is the first event the client has not been handed: the
// first queued event frame, else one past what its filter was checked
// against. 0 before the client joined (nothing to resume).
func (c *Client) resumeLocked() uint64 {
	if c.phase == joining {
		return 0
	}
	return max(c.checkedLocked()+1, c.minSeq, 1)
}

// checkedLocked: see Checked. Frames leave in order: the replay's events,
// then (once the replay has read up to liveFrom) the live events held
// back, then live ones.
func (c *Client) checkedLocked() uint64 {
	if seq, ok := firstEvent(c.queue[c.head:]); ok {
		return seq - 1
	}
	if c.phase == joining {
		return 0
	}
	if c.phase == buffering && c.replayNext < c.liveFrom {
		return max(c.replayNext, 1) - 1 // 0: not known yet
	}
	if seq, ok := firstEvent(c.pending); ok {
		return seq - 1
	}
	if c.lagging {
		return c.lagNext - 1
	}
	checked := c.lastLive
	if c.feed != nil {
		checked = max(checked, c.feed.Load())
	}
	return checked
}

func firstEvent(items []item) (uint64, bool) {
	for _, it := range items {
		if it.seq > 0 {
			return it.seq, true
		}
	}
	return 0, false
}

func (c *Client) endLocked(code Code, reason string) {
	if c.closed {
		return
	}
	e := &ending{code: code.Close(), text: code.closeText()}
	if code != Shutdown {
		var resume uint64
		if code.Resumes() {
			resume = c.resumeLocked()
		}
		msg := reason
		switch {
		case resume > 0 && c.epoch != "":
			msg += fmt.Sprintf("; reconnect with from_seq=%d&epoch=%s", resume, c.epoch)
		case resume > 0:
			msg += fmt.Sprintf("; reconnect with from_seq=%d", resume)
		case code == StreamReset:
			msg += "; reconnect without from_seq (since, or live only)"
		}
		e.frame = ErrorFrame(code, msg, resume, c.epoch)
	}
	c.closed, c.end = true, e
	close(c.done)
	c.drop()
	c.stopBookmark()
	if c.sink != nil {
		c.sendEnd()
	}
}

// sendEnd hands the sink the error frame (into one of the two slots kept
// for it) and the close, and arms the abort timer. c.mu is held.
func (c *Client) sendEnd() {
	e := c.end
	if e == nil {
		e = &ending{code: CloseGoingAway, text: "closed"}
	}
	if e.frame != nil && c.sink.Send(e.frame) == nil {
		c.handed++
	}
	_ = c.sink.Close(e.code, e.text)
	c.timer = time.AfterFunc(c.opts.CloseTimeout, c.sink.Abort)
}

func (c *Client) drop() {
	c.queue, c.head, c.pending, c.queued, c.mainBytes = nil, 0, nil, 0, 0
}

// armBookmark starts the bookmark timer of a client that went live.
// c.mu is held.
func (c *Client) armBookmark() {
	if c.closed || c.opts.BookmarkInterval < 0 || c.bookmark != nil {
		return
	}
	c.lastHand = time.Now()
	c.bookmark = time.AfterFunc(c.opts.BookmarkInterval, c.idle)
}

func (c *Client) stopBookmark() {
	if c.bookmark != nil {
		c.bookmark.Stop()
	}
}

// idle runs when the client may have been handed nothing for
// BookmarkInterval: if so, and nothing waits for it, it queues
// {"type":"bookmark","seq":N} with N = Checked; then it waits again.
func (c *Client) idle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	wait := c.opts.BookmarkInterval - time.Since(c.lastHand)
	if wait <= 0 {
		wait = c.opts.BookmarkInterval
		if c.head == len(c.queue) && c.phase == live && !c.lagging {
			if n := c.checkedLocked(); n > 0 {
				c.push(item{data: BookmarkFrame(n)})
				c.flush()
				c.lastHand = time.Now()
			}
		}
	}
	c.bookmark.Reset(wait)
}
