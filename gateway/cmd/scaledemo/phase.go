package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"
)

// gatewaysCaughtUp waits until every gateway's live feed has reached the
// central stream's last sequence (a client that connects earlier is sent
// the gateway's backlog first), asking with one short-lived client each.
func (d *demo) gatewaysCaughtUp(ctx context.Context) error {
	last, err := d.settled(ctx)
	if err != nil {
		return err
	}
	for j, addr := range d.gwAddrs {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			seq, err := liveSeq(ctx, addr)
			if err == nil && seq >= last {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("gateway-%d has not caught up with the stream (%d) after 3 minutes: live at %d (%v)", j+1, last, seq, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// settled waits until the central stream has stopped growing (every
// publisher's queue stored, every source copied) and returns its last
// sequence.
func (d *demo) settled(ctx context.Context) (uint64, error) {
	var last uint64
	stable := time.Now()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		if err := d.waitCentral(ctx, 0, 2*time.Minute); err != nil {
			return 0, err
		}
		si, err := d.info(ctx)
		if err != nil {
			return 0, err
		}
		if si.State.LastSeq != last {
			last, stable = si.State.LastSeq, time.Now()
		} else if time.Since(stable) > 3*time.Second {
			return last, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return 0, fmt.Errorf("the central stream is still growing after 3 minutes")
}

// clients runs the latency, CPU and failover phase: n clients spread over
// the gateways, rate events/s over every engine for d; half way, the first
// gateway is killed and its clients resume on the others.
func (d *demo) clients(ctx context.Context, n, rate int, dur time.Duration) error {
	if err := d.gatewaysCaughtUp(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var cls []*client
	var wg sync.WaitGroup
	ready := make(chan error, n)
	for i := range n {
		c := &client{gws: d.gwAddrs, gw: i % len(d.gwAddrs), sample: i%10 == 0}
		cls = append(cls, c)
		wg.Go(func() { c.run(cctx, ready) })
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond) // do not storm the gateways' accept queues
		}
	}
	defer func() {
		cancel()
		for _, c := range cls {
			c.stop()
		}
		wg.Wait()
	}()
	for range n {
		select {
		case err := <-ready:
			if err != nil {
				return err
			}
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("clients not live after 2 minutes")
		}
	}
	fmt.Printf("\n## %d clients on %d gateways, %d events/s over %d engines, %v\n\n", n, len(d.gws), rate, len(d.engines), dur)

	// Emit at rate, round robin over the engines, every 10 ms.
	stopEmit := make(chan struct{})
	emitted := make(chan int)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start, sent := time.Now(), 0
		for {
			select {
			case <-stopEmit:
				emitted <- sent
				return
			case <-tick.C:
			}
			due := int(time.Since(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				d.engines[sent%len(d.engines)].Emit(d.gen(sent))
			}
		}
	}()

	// Gateway CPU over the first half (every gateway up).
	half := dur / 2
	time.Sleep(2 * time.Second) // the flow settles
	cpu0 := make([]time.Duration, len(d.gws))
	for j, g := range d.gws {
		cpu0[j], _ = g.cpu()
	}
	t0 := time.Now()
	sampling.Store(true)
	time.Sleep(half - 2*time.Second)
	sampling.Store(false)
	window := time.Since(t0)
	var cpuPct []float64
	var total float64
	for j, g := range d.gws {
		c, _ := g.cpu()
		pct := float64(c-cpu0[j]) / float64(window) * 100
		cpuPct = append(cpuPct, pct)
		total += pct
	}

	// Kill the first gateway; its clients resume on the others.
	d.gws[0].kill(syscall.SIGKILL)
	time.Sleep(dur - half)
	close(stopEmit)
	sent := <-emitted

	// Every client must reach the stream's last sequence.
	final, err := d.settled(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		behind := 0
		for _, c := range cls {
			if _, last, _, _ := c.snapshot(); last < final {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, c := range cls[:min(5, len(cls))] {
				first, last, events, bad := c.snapshot()
				c.mu.Lock()
				gw, resumes := c.gw, c.resumes
				c.mu.Unlock()
				fmt.Printf("client %d: gateway %d, first %d last %d events %d resumes %d, problems %d %v\n", i, gw+1, first, last, events, resumes, len(bad), bad[:min(3, len(bad))])
			}
			return fmt.Errorf("%d clients have not reached the stream's last sequence %d after 2 minutes", behind, final)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var lat []int64
	moved, failed, slow := 0, 0, 0
	for i, c := range cls {
		first, last, events, bad := c.snapshot()
		c.mu.Lock()
		lat = append(lat, c.lat...)
		if i%len(d.gwAddrs) == 0 && c.gw != 0 { // it was on gateway-1
			moved++
		}
		slow += c.slow
		c.mu.Unlock()
		ok := len(bad) == 0 && last == final && uint64(events) == last-first+1
		if !ok {
			failed++
			if failed <= 5 {
				fmt.Printf("client %d: first %d last %d events %d (want %d): %v\n", i, first, last, events, last-first+1, bad)
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return time.Duration(lat[min(len(lat)-1, int(float64(len(lat))*p))])
	}
	fmt.Println("| measure | value |")
	fmt.Println("| --- | --- |")
	fmt.Printf("| events emitted (stand-in engines) | %d |\n", sent)
	fmt.Printf("| end-to-end latency, engine event to client, every gateway up (samples: every 10th client) | %d |\n", len(lat))
	fmt.Printf("| latency p50 / p99 / max | %v / %v / %v |\n", pct(0.50).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), pct(1).Round(time.Millisecond))
	perGW := float64(n) / float64(len(d.gws))
	for j, p := range cpuPct {
		fmt.Printf("| gateway-%d CPU, %.0f clients, %d frames/s | %.1f %% of a core |\n", j+1, perGW, int(perGW)*rate, p)
	}
	fmt.Printf("| **gateway CPU per 1,000 clients at %d events/s** (each client gets every event) | **%.1f %% of a core** |\n", rate, total/(float64(n)/1000))
	fmt.Printf("| clients moved to another gateway after gateway-1 was killed | %d |\n", moved)
	fmt.Printf("| slow_consumer closes (each resumed with from_seq) | %d |\n", slow)
	fmt.Printf("| clients with every sequence exactly once, in order, up to the last (%d) | %d of %d |\n", final, n-failed, n)
	if failed > 0 {
		return fmt.Errorf("%d of %d clients did not receive every event exactly once", failed, n)
	}
	fmt.Println("\nexactly-once across the gateway kill: OK")
	return nil
}
