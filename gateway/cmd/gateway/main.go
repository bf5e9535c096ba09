// Command gateway serves dockcast's event stream to WebSocket clients.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "gateway: not built yet")
	os.Exit(1)
}
