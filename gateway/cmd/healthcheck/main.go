// Command healthcheck is the health probe of dockcast's FROM scratch images,
// which have no shell, curl or wget: `healthcheck URL` GETs URL and exits 0
// when the answer is 2xx, 1 otherwise, and 2 on bad usage. Entry point: run.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
