// Package status defines the publisher's Docker connection status, stored
// in the JetStream key-value bucket DOCKER_STATUS under the key <node>.
package status

import (
	"encoding/json"
	"fmt"
	"time"
)

// Bucket is the key-value bucket holding one Status per node.
const Bucket = "DOCKER_STATUS"

// Values of Status.Docker.
const (
	Connected    = "connected"
	Disconnected = "disconnected"
)

// Status is the state of one publisher's connection to its Docker engine.
type Status struct {
	Node   string `json:"node"`
	Docker string `json:"docker"` // Connected or Disconnected
	Error  string `json:"error"`  // why it is disconnected, else ""
	// Since is when the connection entered this state.
	Since  time.Time `json:"since"`
	Engine Engine    `json:"engine"`
	// Updated is when the publisher last wrote the value: it rewrites it
	// at least every RefreshEvery, so a value older than StaleAfter means
	// the node's state is unknown.
	Updated time.Time `json:"updated"`
	// Holder names the publisher process holding the node's lease (a hash
	// of its host name, its pid, a random part); the key is the lease.
	Holder string `json:"holder,omitempty"`
}

// How often a publisher rewrites its status, and when a status that was
// not rewritten means "unknown" to consumers (contract, "Edge mode").
const (
	RefreshEvery = 15 * time.Second
	StaleAfter   = 45 * time.Second
)

// Stale reports whether s has not been rewritten for StaleAfter at now
// (a value without Updated, from an older publisher, is never stale).
func (s Status) Stale(now time.Time) bool {
	return !s.Updated.IsZero() && now.Sub(s.Updated) > StaleAfter
}

// Engine describes the Docker engine the publisher watches.
type Engine struct {
	Version    string `json:"version"`
	APIVersion string `json:"api_version"`
}

// Marshal encodes the status as the bucket's JSON value.
func (s Status) Marshal() []byte {
	b, _ := json.Marshal(s) // only strings and a time: cannot fail
	return b
}

// Decode parses a bucket value.
func Decode(data []byte) (Status, error) {
	var s Status
	if err := json.Unmarshal(data, &s); err != nil {
		return Status{}, fmt.Errorf("decode status: %w", err)
	}
	return s, nil
}
