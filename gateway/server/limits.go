package server

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// perAddr counts connections per client address (Peer.Key).
type perAddr struct {
	mu  sync.Mutex
	max int
	n   map[netip.Prefix]int
}

func newPerAddr(max int) *perAddr { return &perAddr{max: max, n: map[netip.Prefix]int{}} }

// acquire takes a slot for key; false when key holds max already.
func (p *perAddr) acquire(key netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key] >= p.max {
		return false
	}
	p.n[key]++
	return true
}

func (p *perAddr) release(key netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key] <= 1 {
		delete(p.n, key)
		return
	}
	p.n[key]--
}

// AuthLimit bounds failed token checks per client address: Burst
// failures at once, then one more every Every.
type AuthLimit struct {
	Burst int           // default 10
	Every time.Duration // default 6s (10 a minute)
}

func (a AuthLimit) defaults() AuthLimit {
	if a.Burst <= 0 {
		a.Burst = 10
	}
	if a.Every <= 0 {
		a.Every = 6 * time.Second
	}
	return a
}

// authLimitMax bounds the addresses the failure limiter tracks.
const authLimitMax = 1 << 16

// authLimiter is a token bucket of failed token checks per address: an
// address whose bucket is empty is refused (429) before its token is even
// looked at, until the bucket refills.
type authLimiter struct {
	mu  sync.Mutex
	cfg AuthLimit
	m   map[netip.Prefix]*rate.Limiter
}

func newAuthLimiter(cfg AuthLimit) *authLimiter {
	return &authLimiter{cfg: cfg.defaults(), m: map[netip.Prefix]*rate.Limiter{}}
}

// blocked reports whether key may not try a token now, and when it may.
func (l *authLimiter) blocked(key netip.Prefix, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	return time.Duration((1 - tokens) * float64(l.cfg.Every)), true
}

// failed records a failed token check by key.
func (l *authLimiter) failed(key netip.Prefix, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= authLimitMax {
			l.sweep(now)
		}
		lim = rate.NewLimiter(rate.Every(l.cfg.Every), l.cfg.Burst)
		l.m[key] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets addresses whose bucket is full again; if that frees
// nothing, it forgets them all (an attacker rotating addresses gains
// nothing it would not get from new ones). l.mu is held.
func (l *authLimiter) sweep(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.cfg.Burst) {
			delete(l.m, k)
		}
	}
	if len(l.m) >= authLimitMax {
		clear(l.m)
	}
}
