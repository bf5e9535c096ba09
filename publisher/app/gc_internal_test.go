package app

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// The publisher collects every 4× its live heap under a soft memory limit
// that grows with the queue's bound, unless GOGC or GOMEMLIMIT is set.
// Not parallel: the settings are the process's.
func TestTuneGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	log := slog.New(slog.DiscardHandler)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	for _, tc := range []struct {
		name      string
		env       map[string]string
		queue     int64
		tuned     bool
		wantLimit int64
	}{
		{"defaults", nil, 64 << 20, true, 512 << 20},
		{"a large queue", nil, 1 << 30, true, 8 << 30},
		{"GOGC set", map[string]string{"GOGC": "50"}, 64 << 20, false, math.MaxInt64},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, 64 << 20, false, math.MaxInt64},
	} {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		if got := tuneGC(env(tc.env), tc.queue, log); got != tc.tuned {
			t.Fatalf("%s: tuned %v, want %v", tc.name, got, tc.tuned)
		}
		wantPercent := 100
		if tc.tuned {
			wantPercent = gcPercent
		}
		if p := debug.SetGCPercent(100); p != wantPercent {
			t.Fatalf("%s: GOGC %d, want %d", tc.name, p, wantPercent)
		}
		if l := debug.SetMemoryLimit(-1); l != tc.wantLimit {
			t.Fatalf("%s: memory limit %d, want %d", tc.name, l, tc.wantLimit)
		}
	}
}
