package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// startHeapProfile writes a heap profile to path each time the live heap
// reaches a new peak (checked every 250ms, written at most once a second),
// and once more when stop is called, to path+".end". It is for benchmarks:
// the profile at the peak shows what holds memory when RSS is highest.
func startHeapProfile(path string) (stop func(), err error) {
	if f, err := os.Create(path); err != nil {
		return nil, fmt.Errorf("heap profile: %w", err)
	} else {
		f.Close()
	}
	write := func(p string) {
		f, err := os.Create(p)
		if err != nil {
			return
		}
		defer f.Close()
		_ = pprof.Lookup("heap").WriteTo(f, 0)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		var last time.Time
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak+peak/20 && time.Since(last) >= time.Second {
				peak, last = v, time.Now()
				runtime.GC() // the profile shows the heap as of the last GC
				write(path)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		write(path + ".end")
	}, nil
}
