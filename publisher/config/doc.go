// Package config holds the publisher's configuration: [Config] with every
// environment variable of the contract, read and validated by [Load].
// Each problem is reported as one "VARIABLE: problem" line.
package config
