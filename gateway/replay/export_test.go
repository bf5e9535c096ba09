package replay

// SetHook lets tests act at a stage of the replay: "created" (the consumer
// exists, its start checked, nothing fetched yet) and "fetch" (before each
// fetch).
func SetHook(r *Replayer, f func(stage string)) { r.hook = f }
