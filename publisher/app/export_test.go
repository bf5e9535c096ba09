package app

import (
	"context"

	"github.com/dockcast/dockcast/publisher/stream"
)

// SetRunWriter replaces how a runs its writer (fault injection).
func SetRunWriter(a *App, run func(ctx context.Context, w *stream.Writer) error) { a.runWriter = run }
