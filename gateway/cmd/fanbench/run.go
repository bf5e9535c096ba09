package main

import (
	"context"
	"fmt"
	"io"
)

// run dispatches on the role: none (the orchestrator), client or gateway.
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
	}
	return fmt.Errorf("unknown role %q (none, client or gateway)", role)
}
