package services

import (
	"net"
	"os"
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
	// Spin for 50ms of wall time: the kernel charges this process about
	// five ticks of 10ms.
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	_ = x
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 0.02 || after-before > 10 {
		t.Fatalf("CPU time grew by %.2fs over a 50ms spin, want about 0.05s", after-before)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("ProcessCPU of a pid that does not exist: no error")
	}
}
