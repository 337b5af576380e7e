package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docshift/docshift/internal/services"
)

// TestProduceKill9 kills the producer process with SIGKILL ten times at
// random moments while a writer keeps changing documents and a snapshot
// runs: after the last restart the target equals the source, and a
// read_committed reader sees every change event once.
func TestProduceKill9(t *testing.T) {
	r := newLiveRig(t)
	ctx := services.Context(t, 5*time.Minute)
	bin := buildDocshift(t)
	changes := 8000
	if s := os.Getenv("DOCSHIFT_TEST_KILL_CHANGES"); s != "" {
		changes, _ = strconv.Atoi(s)
	}
	r.seed(ctx, 1000)
	time.Sleep(1100 * time.Millisecond)

	logDir := t.TempDir()
	start := func(n int) *exec.Cmd {
		args := append([]string{"produce", "--mapping", r.mapping, "--mongo-uri", r.mcURI, "--monitor-addr", "", "--max-batch", "200"}, r.kafkaFlags()...)
		cmd := exec.CommandContext(ctx, bin, args...)
		f, err := os.Create(filepath.Join(logDir, "produce-"+strconv.Itoa(n)+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start(0)
	r.waitStreamStarted(ctx)
	w := r.watch(ctx)

	var wg sync.WaitGroup
	var werr, serr error
	wg.Add(2)
	go func() { defer wg.Done(); werr = r.write(ctx, changes, 11) }()
	go func() {
		defer wg.Done()
		if code, _, stderr := docshift(ctx, t, append([]string{"snapshot", "--mapping", r.mapping, "--mongo-uri", r.mcURI, "--chunk-docs", "200"}, r.kafkaFlags()...)...); code != 0 {
			serr = &exitError{code, stderr}
		}
	}()
	rng := rand.New(rand.NewPCG(5, 9))
	for kill := 1; kill <= 10; kill++ {
		time.Sleep(time.Duration(150+rng.IntN(600)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		cmd = start(kill)
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	r.waitCaughtUp(ctx, w)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	r.converge(ctx, r.tcfg.Prefix+"-sink")
	w.mu.Lock()
	events := w.events
	w.mu.Unlock()
	skippable := w.mayBeSkipped()
	n := r.producerRecords(ctx)
	if n > events || n < events-skippable {
		t.Fatalf("%d change records published; the collection's change stream had %d events, %d of them updates of documents deleted since",
			n, events, skippable)
	}
	t.Logf("10 kill -9 of the producer during %d changes and a snapshot: target equals source, %d change records, none twice", r.changes, n)
}

type exitError struct {
	code   int
	stderr string
}

func (e *exitError) Error() string { return "exited " + strconv.Itoa(e.code) + ": " + e.stderr }
