package replay

import "github.com/dockcast/dockcast/gateway/client"

// SetHook lets tests act at a stage of a replay: "turn" (a slot was
// taken), "created" (the consumer exists, its start checked, nothing
// fetched yet) and "fetch" (before each fetch).
func SetHook(r *Replayer, f func(stage string, c *client.Client)) { r.hook = f }
