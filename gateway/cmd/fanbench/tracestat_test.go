package main

import (
	"bytes"
	"os"
	"path/filepath"
	rtrace "runtime/trace"
	"strings"
	"sync"
	"testing"
)

// TestRoleOf: goroutines are told apart by the functions on their stacks.
func TestRoleOf(t *testing.T) {
	t.Parallel()
	stack := func(fns ...string) []string { return fns }
	for _, c := range []struct {
		stack []string
		want  role
	}{
		{stack("syscall.write", "github.com/olahol/melody.(*Session).writePump"), roleWriter},
		{stack("runtime.gopark", "github.com/centrifugal/centrifuge.(*writer).run"), roleWriter},
		{stack("runtime.selectgo", "github.com/nats-io/nats.go/jetstream.(*pullSubscription).Next", "github.com/dockcast/dockcast/gateway/hub.(*Hub).follow"), roleFeed},
		{stack("github.com/dockcast/dockcast/gateway/hub.(*Hub).watchdog", "github.com/dockcast/dockcast/gateway/hub.(*Hub).follow.func1"), roleOther},
		{stack("syscall.read", "github.com/nats-io/nats%2ego.(*Conn).readLoop"), roleRead},
		{stack("runtime.gopark", "net/http.(*conn).serve"), roleOther},
	} {
		if got := roleOf(c.stack); got != c.want {
			t.Errorf("%v: %s, want %s", c.stack, roleNames[got], roleNames[c.want])
		}
	}
}

// TestTraceStatReadsATrace: a trace of this process is read to the end
// and reported (with no gateway in it, every figure is "none").
func TestTraceStatReadsATrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.trace")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rtrace.Start(f); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done() }()
	}
	wg.Wait()
	rtrace.Stop()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runTraceStat([]string{path}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "writer: woken by the feed -> running") || !strings.Contains(out.String(), "none") {
		t.Fatalf("report:\n%s", out.String())
	}
	if err := runTraceStat(nil, &out); err == nil {
		t.Fatal("no trace file: no error")
	}
}
