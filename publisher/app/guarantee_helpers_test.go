package app_test

import (
	"encoding/json"
	"time"

	"github.com/dockcast/dockcast/publisher/app"
)

// appT is the publisher's App, for the tune functions of startPub.
type appT = app.App

// stopAnyway stops the publisher without checking how it ended (a test
// that left it unable to drain its queue).
func (p *pub) stopAnyway() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Error("publisher did not stop in 60s")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
