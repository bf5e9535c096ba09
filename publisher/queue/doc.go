// Package queue is the buffer between the Docker reader and the JetStream
// writer: a FIFO of encoded events ([Item], encoded once by [NewItem])
// bounded in bytes (PUBLISHER_QUEUE_MAX_BYTES), so that a NATS outage of
// tens of seconds at thousands of events per second loses nothing.
//
// The reader pushes with [Queue.TryPush], which never blocks (a full queue
// is the reader's cue to close its subscription and resume later); a gap
// announcement goes in with [Queue.PushAll], all of it or none. The writer
// takes batches with [Queue.Next]. [Relay]
// runs ordered [Stage]s (enrichment that may wait) between two queues.
package queue
