package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	runpprof "runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dockcast/dockcast/gateway/app"
	"github.com/dockcast/dockcast/gateway/config"
)

// runGateway is the gateway built in-process from its packages, exactly as
// bin/gateway runs it (config.Load, app.Run), plus a debug listener on
// FANBENCH_DEBUG_ADDR: /debug/pprof/* (with /debug/pprof/trace), /debug/cpu/start?path=…,
// /debug/cpu/stop and /debug/breakdown. FANBENCH_MEMPROFILERATE=1 records
// every allocation, for an exact breakdown.
func runGateway(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	if v := getenv("FANBENCH_MEMPROFILERATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("FANBENCH_MEMPROFILERATE: %q is not a positive integer", v)
		}
		runtime.MemProfileRate = n
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := cfg.NewLogger(stderr)
	addr := getenv("FANBENCH_DEBUG_ADDR")
	if addr == "" {
		return errors.New("FANBENCH_DEBUG_ADDR is required")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("debug listener: %w", err)
	}
	dbg := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = dbg.Serve(ln)
	}()
	err = app.Run(ctx, cfg, log, app.Options{})
	_ = dbg.Close()
	wg.Wait()
	return err
}

func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var cpuMu sync.Mutex
	var cpuFile *os.File
	mux.HandleFunc("/debug/cpu/start", func(w http.ResponseWriter, r *http.Request) {
		cpuMu.Lock()
		defer cpuMu.Unlock()
		if cpuFile != nil {
			http.Error(w, "a CPU profile is running", http.StatusConflict)
			return
		}
		f, err := os.Create(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := runpprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cpuFile = f
	})
	mux.HandleFunc("/debug/cpu/stop", func(w http.ResponseWriter, _ *http.Request) {
		cpuMu.Lock()
		defer cpuMu.Unlock()
		if cpuFile == nil {
			http.Error(w, "no CPU profile is running", http.StatusConflict)
			return
		}
		runpprof.StopCPUProfile()
		err := cpuFile.Close()
		cpuFile = nil
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/debug/breakdown", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(takeBreakdown())
	})
	return mux
}

// heapBreakdown is the process's memory after a GC: the runtime's totals
// and the heap in use by component (the allocation's nearest caller in a
// package the breakdown names).
type heapBreakdown struct {
	HeapInuse   uint64           `json:"heap_inuse"`
	HeapAlloc   uint64           `json:"heap_alloc"`
	StackInuse  uint64           `json:"stack_inuse"`
	Sys         uint64           `json:"sys"`
	Goroutines  int              `json:"goroutines"`
	Components  map[string]int64 `json:"components"`   // bytes in use
	Objects     map[string]int64 `json:"objects"`      // objects in use
	Sites       map[string]int64 `json:"sites"`        // bytes in use by allocating function
	ProfileRate int              `json:"profile_rate"` // runtime.MemProfileRate
}

func takeBreakdown() heapBreakdown {
	runtime.GC()
	runtime.GC() // the memory profile is as of the last completed GC cycle
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b := heapBreakdown{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Sys: ms.Sys,
		Goroutines: runtime.NumGoroutine(), Components: map[string]int64{}, Objects: map[string]int64{},
		Sites: map[string]int64{}, ProfileRate: runtime.MemProfileRate}
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	for _, r := range recs {
		comp, site := component(r.Stack())
		// Sampled records stand for more than they saw: scale them as
		// pprof does (exact with MemProfileRate=1).
		bytes, objs := scaleSample(r.InUseBytes(), r.InUseObjects(), runtime.MemProfileRate)
		b.Components[comp] += bytes
		b.Objects[comp] += objs
		b.Sites[site] += bytes
	}
	return b
}

// scaleSample estimates the bytes and objects a sampled record stands for.
func scaleSample(bytes, objs int64, rate int) (int64, int64) {
	if rate <= 1 || objs == 0 || bytes == 0 {
		return bytes, objs
	}
	avg := float64(bytes) / float64(objs)
	scale := 1 / (1 - math.Exp(-avg/float64(rate)))
	return int64(float64(bytes) * scale), int64(float64(objs) * scale)
}

// Components of an idle client's memory, by the package that allocated it.
var components = []struct{ prefix, name string }{
	{"github.com/gorilla/websocket.", "gorilla/websocket: Conn, read/write buffers"},
	{"github.com/olahol/melody.", "melody: Session, output channel"},
	{"github.com/dockcast/dockcast/gateway/ws.", "dockcast ws.Client and queue"},
	{"github.com/dockcast/dockcast/gateway/hub.", "dockcast hub: registry and index"},
	{"github.com/dockcast/dockcast/gateway/replay.", "dockcast replay"},
	{"github.com/dockcast/dockcast/gateway/server.", "dockcast server: admission, request"},
	{"github.com/dockcast/dockcast/gateway/query.", "dockcast server: admission, request"},
	{"github.com/dockcast/dockcast/shared/filter.", "dockcast server: admission, request"},
	{"github.com/dockcast/dockcast/", "dockcast, other"},
	{"net/http.", "net/http: server conn, request, bufio (kept by the hijacked conn)"},
	{"net/url.", "net/http: server conn, request, bufio (kept by the hijacked conn)"},
	{"net/textproto.", "net/http: server conn, request, bufio (kept by the hijacked conn)"},
	{"net.", "net: socket and poller"},
	{"internal/poll.", "net: socket and poller"},
	{"github.com/nats-io/", "nats client"},
	{"github.com/prometheus/", "metrics"},
}

// helpers are generic functions an allocation is attributed through, to
// the caller that asked for it.
var helpers = []string{"runtime.", "bufio.", "bytes.", "strings.", "sync.", "reflect.", "slices.", "maps.",
	"strconv.", "fmt.", "encoding/", "unicode/", "context.", "time.", "internal/bytealg.", "sort.", "errors.", "io."}

// component names the component of an allocation's stack (innermost
// frame first) and the function that allocated it.
func component(stack []uintptr) (comp, site string) {
	var fns []string
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if f.Function != "" {
			fns = append(fns, f.Function)
		}
		if !more {
			break
		}
	}
	return componentOf(fns)
}

// componentOf attributes a stack of function names (innermost first) to
// the first that belongs to a named component, looking through helpers.
func componentOf(fns []string) (comp, site string) {
	leaf := ""
	for _, fn := range fns {
		if fn == "runtime.malg" {
			return "runtime: goroutine descriptors", fn
		}
		if isHelper(fn) {
			continue
		}
		if leaf == "" {
			leaf = fn
		}
		for _, c := range components {
			if strings.HasPrefix(fn, c.prefix) {
				return c.name, fn
			}
		}
	}
	if leaf == "" {
		return "runtime, other", "runtime"
	}
	return "other", leaf
}

func isHelper(fn string) bool {
	for _, h := range helpers {
		if strings.HasPrefix(fn, h) {
			return true
		}
	}
	return false
}

// topSites are the n largest entries of m, largest first.
func topSites(m map[string]int64, n int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	return keys[:min(n, len(keys))]
}
