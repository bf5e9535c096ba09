package hub

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server/gsl"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/filter"
)

// FuzzIndexCoversMatch: the subject index finds every client whose filter
// matches an event, exactly once (index match ⊇ filter.Match).
func FuzzIndexCoversMatch(f *testing.F) {
	f.Add("type=container,event=start", "web-1", "container", "start", "", "app=x")
	f.Add("node=web.1,event=health_status", "web.1", "container", "health_status", "healthy", "")
	f.Add("event=exec_start: sh,type=container", "n", "container", "exec_start", "sh -c ls", "")
	f.Add("label=a=b,container=abc", "n", "container", "die", "", "a=b")
	f.Add("event=sta,event=exec_create", "n*", "image", "start", "", "")
	f.Add("type=net>work,node= x", " x", "net>work", "create", "", "")
	f.Fuzz(func(t *testing.T, filt, node, typ, action, detail, label string) {
		flt, err := filter.ParseList(filt, filter.GatewayKeys)
		if err != nil {
			return
		}
		attrs := map[string]string{"name": "abc"}
		if k, v, ok := strings.Cut(label, "="); ok && k != "" {
			attrs[k] = v
		}
		if typ == "" || action == "" || strings.Contains(action, ":") {
			return
		}
		ev := event.New(node, typ, action, detail, "abc123", attrs, time.Unix(1, 0))
		idx := gsl.NewSublist[*client.Client]()
		c := client.New(client.Spec{Filter: flt, Subjects: flt.Subjects(), Exact: true}, client.Options{})
		for _, s := range c.Spec.Subjects {
			if err := idx.Insert(s, c); err != nil {
				t.Fatalf("insert %q: %v", s, err)
			}
		}
		n := 0
		idx.Match(ev.Subject(), func(*client.Client) { n++ })
		if flt.Match(&ev) && n == 0 {
			t.Fatalf("filter %q matches %s but the index does not (subjects %v)", filt, ev.Subject(), c.Spec.Subjects)
		}
		if n > 1 {
			t.Fatalf("client matched %d times for %s (subjects %v)", n, ev.Subject(), c.Spec.Subjects)
		}
	})
}
