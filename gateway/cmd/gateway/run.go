package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

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
	// SIGHUP re-reads GATEWAY_TOKENS_FILE.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return app.Run(ctx, cfg, log, app.Options{Reload: reload})
}
