package services

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestListenerPIDFindsThisProcess(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	pid, err := ListenerPID(addr)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("ListenerPID(%s) = %d, %v; want this process, %d", addr, pid, err, os.Getpid())
	}
	l.Close()
	if pid, err := ListenerPID(addr); err == nil || !strings.Contains(err.Error(), "no local process listens") {
		t.Fatalf("ListenerPID(%s) after close = %d, %v; want an error naming the port", addr, pid, err)
	}
}

func TestProcessCPUGrows(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has charged this process 50ms more (five ticks
	// of 10ms): on a loaded machine that takes longer than 50ms of wall time.
	start := time.Now()
	var after float64
	for x := 0; ; {
		for spin := time.Now(); time.Since(spin) < 10*time.Millisecond; {
			x++
		}
		if after, err = ProcessCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if after-before >= 0.05 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("CPU time grew by %.2fs over %s of spinning, want 0.05s", after-before, time.Since(start))
		}
	}
	if limit := time.Since(start).Seconds()*float64(runtime.NumCPU()) + 0.05; after-before > limit {
		t.Fatalf("CPU time grew by %.2fs in %s on %d CPUs, more than the machine has", after-before, time.Since(start), runtime.NumCPU())
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("ProcessCPU of a pid that does not exist: no error")
	}
}
