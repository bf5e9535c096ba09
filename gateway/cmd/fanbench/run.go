package main

import (
	"context"
	"fmt"
	"io"
)

// run dispatches on the role: none (the orchestrator), client, gateway or
// tracestat.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	role := ""
	if len(args) > 1 {
		role = args[1]
	}
	switch role {
	case "":
		return runOrchestrator(ctx, getenv, stdout, stderr)
	case "client":
		return runClient(ctx, args[2:], stdin, stdout)
	case "gateway":
		return runGateway(ctx, getenv, stderr)
	case "tracestat":
		return runTraceStat(args[2:], stdout)
	}
	return fmt.Errorf("unknown role %q (none, client, gateway or tracestat)", role)
}
