package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/shared/event"
	"github.com/dockcast/dockcast/shared/testkit"
)

// TestEventMetrics: the gateway's /metrics counts what the engines do,
// from the live feed: events by node, type and action, OOMs, dies with a
// non-zero exit code, restarts and health status changes by node, with no
// container name or id among the labels.
func TestEventMetrics(t *testing.T) {
	t.Parallel()
	ns := testkit.StartJetStream(t)
	_, js := testkit.Connect(t, ns.ClientURL())
	newStream(t, js, "METRICS", 0)
	g := startGateway(t, ns.ClientURL(), "METRICS", nil, app.Options{})
	a, b := testkit.Unique("m-a"), testkit.Unique("m-b")
	c := func(node, action, detail string, attrs map[string]string) {
		evCounter.Lock()
		evCounter.n++
		n := evCounter.n
		evCounter.Unlock()
		at := map[string]string{"name": fmt.Sprint("secret-name-", n), "image": "img:1"}
		for k, v := range attrs {
			at[k] = v
		}
		publish(t, js, event.New(node, "container", action, detail, fmt.Sprintf("%064d", n), at, time.Now()))
	}
	c(a, "start", "", nil)
	c(a, "die", "", map[string]string{"exitCode": "0"})
	c(a, "die", "", map[string]string{"exitCode": "3"})
	c(a, "die", "", map[string]string{"exitCode": "137"})
	c(a, "oom", "", nil)
	c(a, "restart", "", nil)
	c(a, "health_status", "healthy", nil)
	c(a, "health_status", "unhealthy", nil)
	c(a, "health_status", "unhealthy", nil)
	c(b, "die", "", map[string]string{"exitCode": "1"})
	c(b, "state", "running", nil) // a synthetic state is no restart, no exit
	publish(t, js, event.New(b, "image", "pull", "", "img:1", nil, time.Now()))
	want := map[string]float64{
		`dockcast_events_total{action="start",node="` + a + `",type="container"}`:             1,
		`dockcast_events_total{action="die",node="` + a + `",type="container"}`:               3,
		`dockcast_events_total{action="health_status",node="` + a + `",type="container"}`:     3,
		`dockcast_events_total{action="pull",node="` + b + `",type="image"}`:                  1,
		`dockcast_events_total{action="state",node="` + b + `",type="container"}`:             1,
		`dockcast_container_nonzero_exits_total{node="` + a + `"}`:                            2,
		`dockcast_container_nonzero_exits_total{node="` + b + `"}`:                            1,
		`dockcast_container_ooms_total{node="` + a + `"}`:                                     1,
		`dockcast_container_restarts_total{node="` + a + `"}`:                                 1,
		`dockcast_container_health_status_changes_total{node="` + a + `",status="healthy"}`:   1,
		`dockcast_container_health_status_changes_total{node="` + a + `",status="unhealthy"}`: 2,
		// Every live message is timed from its storing to its fan-out, and
		// its fan-out (12 events).
		`dockcast_gateway_feed_delay_seconds_count`: 12,
		`dockcast_gateway_fanout_seconds_count`:     12,
	}
	var body string
	testkit.Eventually(t, 30*time.Second, func() error {
		body = scrape(t, g.base+"/metrics")
		for series, v := range want {
			if got, ok := sample(body, series); !ok || got != v {
				return fmt.Errorf("%s = %v (%v), want %v", series, got, ok, v)
			}
		}
		return nil
	})
	if strings.Contains(body, "secret-name-") || strings.Contains(body, "img:1") {
		t.Error("a container name or image is a label")
	}
	if _, ok := sample(body, `dockcast_container_restarts_total{node="`+b+`"}`); ok {
		t.Error("a state event counted as a restart")
	}
}
