package snapshot

import (
	"strings"
	"testing"
	"time"
)

func TestRatePerCollection(t *testing.T) {
	var r rates
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := Progress{Namespace: "shop.orders", Documents: 1000}
	if got := r.rate(t0, a); got != 0 {
		t.Fatalf("first reading: rate %v, want 0 (unknown)", got)
	}
	a.DocumentsDone = 500
	if got := r.rate(t0.Add(5*time.Second), a); got != 100 {
		t.Fatalf("orders after 5s: rate %v, want 100", got)
	}
	// A collection planned later is measured from its own first reading,
	// not from the first collection's.
	b := Progress{Namespace: "shop.users", Documents: 1000}
	r.rate(t0.Add(5*time.Second), b)
	b.DocumentsDone = 200
	if got := r.rate(t0.Add(7*time.Second), b); got != 100 {
		t.Fatalf("users 2s after its first reading: rate %v, want 100", got)
	}
}

func TestProgressLine(t *testing.T) {
	p := Progress{Namespace: "shop.orders", Documents: 1000, DocumentsDone: 250, Chunks: 4, ChunksDone: 1}
	line := progressLine(p, 50)
	for _, want := range []string{"shop.orders", "[#####...............]", "25.0%", "250/1000 docs", "1/4 chunks", "50 docs/s", "ETA 15s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	p.DocumentsDone, p.ChunksDone = 1000, 4
	if line := progressLine(p, 0); !strings.Contains(line, "ETA done") || !strings.Contains(line, "100.0%") {
		t.Errorf("finished collection: %q", line)
	}
}
