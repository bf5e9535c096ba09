// Package backoff is the one retry delay dockcast uses everywhere it waits
// before trying an external system again (Docker, NATS, a replay): an
// exponential backoff with jitter that starts over once the thing retried
// has stayed healthy for a while.
//
//	b := backoff.New(250*time.Millisecond, 30*time.Second)
//	for {
//		up := time.Now()
//		err := session(ctx)          // runs until something fails
//		b.Healthy(up)                // a long session resets the delay
//		if b.Wait(ctx) != nil {      // jittered, doubling up to Max
//			return
//		}
//	}
//
// Entry points: New, Backoff.Next, Backoff.Wait, Backoff.Healthy,
// Backoff.Reset, Jitter, Sleep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// DefaultHealthyAfter is how long a session must last for Healthy to reset
// the delay, when Backoff.HealthyAfter is zero.
const DefaultHealthyAfter = 30 * time.Second

// Backoff is an exponential retry delay: each Next doubles it from Min up
// to Max and returns a random duration in [d/2, d]. The zero value is not
// usable; make one with New. It is not safe for concurrent use: each retry
// loop owns its Backoff.
type Backoff struct {
	// Min is the first delay, Max the largest.
	Min, Max time.Duration
	// HealthyAfter is how long a session must have lasted for Healthy to
	// start over at Min (DefaultHealthyAfter when zero).
	HealthyAfter time.Duration

	cur time.Duration // the next delay before jitter; 0: Min
}

// New returns a backoff from lo to hi (hi is raised to lo if lower; a
// non-positive lo is 1 ms).
func New(lo, hi time.Duration) *Backoff {
	if lo <= 0 {
		lo = time.Millisecond
	}
	return &Backoff{Min: lo, Max: max(hi, lo)}
}

// Next returns the delay to wait now and doubles the next one.
func (b *Backoff) Next() time.Duration {
	d := b.cur
	if d < b.Min {
		d = b.Min
	}
	b.cur = min(2*d, max(b.Max, b.Min))
	return Jitter(d)
}

// Current is the delay (before jitter) Next would use now.
func (b *Backoff) Current() time.Duration { return max(b.cur, b.Min) }

// Reset starts over at Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Healthy starts over at Min when the session that began at up has lasted
// at least HealthyAfter; a zero up (it never connected) changes nothing.
func (b *Backoff) Healthy(up time.Time) {
	after := b.HealthyAfter
	if after <= 0 {
		after = DefaultHealthyAfter
	}
	if !up.IsZero() && time.Since(up) >= after {
		b.Reset()
	}
}

// Wait sleeps for Next() or until ctx ends, whichever is first; it returns
// ctx's error when ctx ended.
func (b *Backoff) Wait(ctx context.Context) error { return Sleep(ctx, b.Next()) }

// Jitter returns a random duration in [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends; it returns ctx's error when ctx ended.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
