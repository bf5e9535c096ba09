// Command publisher streams the Docker Engine's events into NATS JetStream.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "publisher: not built yet")
	os.Exit(1)
}
