package app

import (
	"log/slog"
	"math"
	"runtime/debug"
)

// The garbage collector's settings for the publisher process, unless
// GOGC or GOMEMLIMIT says otherwise (issue 9). Every event allocates its
// decoded attributes, payload and id, while what stays live is small (the
// queue, mostly empty): with Go's default GOGC=100 the collector runs
// often under a burst (26 times for 100,000 events, 4 % of the CPU). A
// collection every 4× the live heap (5 times), under a soft limit that
// still bounds the process when the queue fills, cut the publisher's CPU
// per event by about a sixth, for about three times the heap during a
// burst (docs/benchmarks.md, "The whole pipeline against raw publishes").
const (
	gcPercent = 400
	// minMemoryLimit is the least soft memory limit; it grows with the
	// queue's bound (memoryLimitPerQueueByte bytes of heap per queued
	// byte: an event's decoded form is a few times its payload).
	minMemoryLimit          = 512 << 20
	memoryLimitPerQueueByte = 8
)

// tuneGC applies gcPercent and a soft memory limit of
// max(minMemoryLimit, memoryLimitPerQueueByte × queueMaxBytes), unless
// getenv sets GOGC or GOMEMLIMIT (then the runtime's own reading of them
// stands). It returns whether it changed anything.
func tuneGC(getenv func(string) string, queueMaxBytes int64, log *slog.Logger) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	limit := int64(minMemoryLimit)
	if queueMaxBytes > 0 && queueMaxBytes < math.MaxInt64/memoryLimitPerQueueByte {
		limit = max(limit, memoryLimitPerQueueByte*queueMaxBytes)
	}
	debug.SetGCPercent(gcPercent)
	debug.SetMemoryLimit(limit)
	log.Debug("garbage collector tuned (GOGC and GOMEMLIMIT unset)", "gogc", gcPercent, "memory_limit_mib", limit>>20)
	return true
}
