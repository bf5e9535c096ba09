package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesWithinJitterUpToMax(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Current(); got != w {
			t.Fatalf("step %d: current %v, want %v", i, got, w)
		}
		d := b.Next()
		if d < w/2 || d > w {
			t.Fatalf("step %d: delay %v outside [%v, %v]", i, d, w/2, w)
		}
	}
}

func TestHealthyResetsOnlyAfterALongSession(t *testing.T) {
	b := New(10*time.Millisecond, time.Second)
	b.HealthyAfter = time.Minute
	b.Next()
	b.Next()
	b.Healthy(time.Now().Add(-time.Second)) // short session: no reset
	if b.Current() != 40*time.Millisecond {
		t.Fatalf("short session reset the delay: %v", b.Current())
	}
	b.Healthy(time.Time{}) // never connected: no reset
	if b.Current() != 40*time.Millisecond {
		t.Fatalf("zero session reset the delay: %v", b.Current())
	}
	b.Healthy(time.Now().Add(-2 * time.Minute))
	if b.Current() != 10*time.Millisecond {
		t.Fatalf("long session did not reset: %v", b.Current())
	}
}

func TestMaxBelowMinAndZeroMin(t *testing.T) {
	b := New(time.Second, time.Millisecond)
	if b.Max != time.Second {
		t.Fatalf("max %v, want raised to min", b.Max)
	}
	for range 3 {
		if d := b.Next(); d > time.Second || d < time.Second/2 {
			t.Fatalf("delay %v", d)
		}
	}
	if z := New(0, 0); z.Min <= 0 || z.Next() <= 0 {
		t.Fatalf("zero min not usable: %+v", z)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := New(time.Hour, time.Hour)
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait on a cancelled context: %v", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0): %v", err)
	}
}

func TestJitterRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 3, time.Second} {
		for range 100 {
			j := Jitter(d)
			if j > d || (d > 1 && j < d/2) {
				t.Fatalf("Jitter(%v) = %v", d, j)
			}
		}
	}
}
