package ws

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/olahol/melody"

	"github.com/dockcast/dockcast/shared/filter"
)

// ErrClosed is returned by Replay once the client is closed.
var ErrClosed = errors.New("client closed")

// Options size a client's buffers. Zero values take the defaults.
type Options struct {
	// MaxQueueBytes bounds the frames waiting for the client (default 1 MiB).
	MaxQueueBytes int
	// MelodyBuffer must equal melody's Config.MessageBufferSize (default 32).
	MelodyBuffer int
	// CloseTimeout is how long a close frame may take before the
	// connection is closed under it (default 5s).
	CloseTimeout time.Duration
}

// Defaults fills zero fields.
func (o Options) Defaults() Options {
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 1 << 20
	}
	if o.MelodyBuffer <= 0 {
		o.MelodyBuffer = 32
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	return o
}

type item struct {
	seq  uint64 // stream sequence of an event frame, 0 for other frames
	data []byte
}

// Client is one WebSocket connection's state. All methods are safe for
// concurrent use and never block, except Replay, which waits for room.
type Client struct {
	// Filter is the client's filter; Subjects its subject filters.
	Filter   filter.Filter
	Subjects []string
	// Patterns are the subject patterns the client's token may read, set
	// before the client joins the hub; nil (anonymous) means everything.
	// The hub sends status frames only for nodes they cover.
	Patterns []string

	opts   Options
	onSlow func(resume uint64)

	mu         sync.Mutex
	sess       *melody.Session
	buffering  bool   // replaying: live events wait in pending
	closed     bool   // no more frames
	liveFrom   uint64 // buffering: first live sequence held back
	minSeq     uint64 // events below are never sent (from_seq)
	queue      []item // frames not yet handed to melody
	head       int
	pending    []item // live events held back during the replay
	queued     int    // bytes in queue[head:] and pending
	mainBytes  int    // bytes in queue[head:]
	handed     uint64 // frames handed to melody
	sent       uint64 // frames melody reported written
	lastLive   uint64 // last live sequence accepted
	replayNext uint64 // next sequence the replay would read
	room       chan struct{}
	done       chan struct{}
	timer      *time.Timer
}

// NewClient makes a client for a filter. onSlow, optional, is called
// (without locks held) when the client is closed as a slow consumer.
func NewClient(f filter.Filter, subjects []string, opts Options, onSlow func(resume uint64)) *Client {
	return &Client{
		Filter: f, Subjects: subjects, opts: opts.Defaults(), onSlow: onSlow,
		room: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Attach binds the melody session (from melody's connect handler) and
// hands it what is already queued.
func (c *Client) Attach(s *melody.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	if c.closed {
		_ = s.CloseWithMsg(melody.FormatCloseMessage(melody.CloseGoingAway, "closed"))
		c.armTimer()
		return
	}
	c.flush()
}

// Done is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Closed reports whether the client is closed.
func (c *Client) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// JoinLive queues the status frames and {"type":"live","seq":seq}; the
// client then takes live events after seq. It reports false when closed.
func (c *Client) JoinLive(statuses [][]byte, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	for _, s := range statuses {
		c.push(item{data: s})
	}
	c.push(item{data: LiveFrame(seq)})
	c.lastLive = seq
	c.flush()
	c.checkOverflow()
	return !c.closed
}

// JoinBuffering queues the status frames and holds back live events from
// liveFrom on until GoLive; events below minSeq are never sent.
func (c *Client) JoinBuffering(statuses [][]byte, liveFrom, minSeq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	for _, s := range statuses {
		c.push(item{data: s})
	}
	c.buffering, c.liveFrom, c.minSeq = true, liveFrom, minSeq
	c.lastLive = liveFrom - 1
	c.flush()
	c.checkOverflow()
	return !c.closed
}

// Live offers a live event frame. Sequences at or below the last one
// accepted are ignored, so that no sequence is sent twice.
func (c *Client) Live(seq uint64, frame []byte) {
	var slow func()
	c.mu.Lock()
	if c.closed || seq <= c.lastLive || seq < c.minSeq {
		c.mu.Unlock()
		return
	}
	c.lastLive = seq
	it := item{seq: seq, data: frame}
	if c.buffering {
		c.pending = append(c.pending, it)
		c.queued += len(frame)
	} else {
		c.push(it)
		c.flush()
	}
	slow = c.checkOverflow()
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
}

// Frame queues a frame that is not an event (status).
func (c *Client) Frame(frame []byte) {
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

// SetReplayNext records the next sequence the replay will read, for
// resume_from_seq should the client overflow before it is handed more.
func (c *Client) SetReplayNext(seq uint64) {
	c.mu.Lock()
	c.replayNext = seq
	c.mu.Unlock()
}

// Replay queues a replayed frame (an event when seq > 0), waiting while
// the client's queue is over half full. It returns ErrClosed once the
// client is closed.
func (c *Client) Replay(seq uint64, frame []byte) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.mainBytes <= c.opts.MaxQueueBytes/2 {
			c.push(item{seq: seq, data: frame})
			if seq > 0 {
				c.replayNext = seq + 1
			}
			c.flush()
			slow := c.checkOverflow()
			c.mu.Unlock()
			if slow != nil {
				slow()
				return ErrClosed
			}
			return nil
		}
		c.mu.Unlock()
		select {
		case <-c.room:
		case <-c.done:
			return ErrClosed
		}
	}
}

// GoLive ends the replay: it queues {"type":"live","seq":seq}, then the live
// events held back, and lets later live events through.
func (c *Client) GoLive(seq uint64) {
	c.mu.Lock()
	if c.closed || !c.buffering {
		c.mu.Unlock()
		return
	}
	c.push(item{data: LiveFrame(seq)})
	for _, it := range c.pending {
		c.queue = append(c.queue, it)
		c.mainBytes += len(it.data)
	}
	c.pending = nil
	c.buffering = false
	c.flush()
	slow := c.checkOverflow()
	c.mu.Unlock()
	if slow != nil {
		slow()
	}
}

// Sent is called from melody's HandleSentMessage: one more frame is
// written, so one more fits in melody's buffer.
func (c *Client) Sent() {
	c.mu.Lock()
	c.sent++
	c.flush()
	c.mu.Unlock()
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// Close sends errFrame (if any) and a close frame with code and text, and
// closes the connection under them after CloseTimeout.
func (c *Client) Close(code int, text string, errFrame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, text, errFrame)
}

// Disconnected is called from melody's HandleDisconnect.
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
}

// Stats reports frames handed to melody and written, and queued bytes.
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

// flush hands queued frames to melody while its buffer has room, keeping
// two slots spare. c.mu is held.
func (c *Client) flush() {
	if c.sess == nil || c.closed {
		return
	}
	limit := uint64(c.opts.MelodyBuffer - 2)
	for c.head < len(c.queue) && c.handed-c.sent < limit {
		it := c.queue[c.head]
		c.queue[c.head] = item{}
		c.head++
		c.queued -= len(it.data)
		c.mainBytes -= len(it.data)
		if err := c.sess.Write(it.data); err != nil {
			return // the session is closing; Disconnected follows
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

// checkOverflow closes the client as a slow consumer when its queue is
// over the limit; it returns the hook to call once c.mu is released.
func (c *Client) checkOverflow() func() {
	if c.closed || c.queued <= c.opts.MaxQueueBytes {
		return nil
	}
	resume := c.resumeSeq()
	msg := fmt.Sprintf("client fell more than %d bytes behind; reconnect with from_seq=%d", c.opts.MaxQueueBytes, resume)
	c.closeLocked(melody.ClosePolicyViolation, "slow consumer", ErrorFrame(CodeSlowConsumer, msg, resume))
	if c.onSlow == nil {
		return nil
	}
	return func() { c.onSlow(resume) }
}

// resumeSeq is the first sequence the client has not been handed.
func (c *Client) resumeSeq() uint64 {
	r := uint64(0)
	for _, it := range c.queue[c.head:] {
		if it.seq > 0 {
			r = it.seq
			break
		}
	}
	if r == 0 {
		switch {
		case c.buffering && c.replayNext > 0:
			r = c.replayNext
		case c.buffering:
			r = c.liveFrom
		default:
			r = c.lastLive + 1
		}
	}
	return max(r, c.minSeq, 1)
}

func (c *Client) closeLocked(code int, text string, errFrame []byte) {
	if c.closed {
		return
	}
	c.closed = true
	close(c.done)
	c.drop()
	if c.sess == nil {
		return // Attach closes it
	}
	if errFrame != nil && c.sess.Write(errFrame) == nil {
		c.handed++
	}
	_ = c.sess.CloseWithMsg(melody.FormatCloseMessage(code, text))
	c.armTimer()
}

func (c *Client) armTimer() {
	conn := c.sess.WebsocketConnection()
	c.timer = time.AfterFunc(c.opts.CloseTimeout, func() { _ = conn.Close() })
}

func (c *Client) drop() {
	c.queue, c.head, c.pending, c.queued, c.mainBytes = nil, 0, nil, 0, 0
}
