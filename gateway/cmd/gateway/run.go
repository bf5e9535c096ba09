package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/config"
	shared "github.com/dockcast/dockcast/shared/config"
)

// configError is a configuration problem, already printed; exit status 2.
type configError struct{ error }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		fmt.Fprintln(stderr, "gateway takes no arguments; it is configured by environment variables (see the README, section \"The gateway\")")
		return configError{errors.New("arguments given")}
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		var p shared.Problems
		if errors.As(err, &p) {
			for _, line := range p {
				fmt.Fprintln(stderr, line)
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return configError{err}
	}
	log := cfg.NewLogger(stderr)
	_ = stdout
	return app.Run(ctx, cfg, log, app.Options{})
}
