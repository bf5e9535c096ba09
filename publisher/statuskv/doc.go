// Package statuskv keeps the node's key in the DOCKER_STATUS bucket: the
// status consumers read (Docker connected or not, the engine, `updated`)
// and the lease on the node that keeps a second publisher from writing
// the same node. [Key.Acquire] takes the lease (a [HeldError] when another
// publisher holds it), [Key.Set] queues a status change, [Key.Run] writes
// the changes in order and renews the lease.
package statuskv
