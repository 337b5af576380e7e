package snapshot

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// IsTerminal reports whether w is a character device (a terminal), where
// progress is redrawn in place rather than logged.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine formats one collection's progress: documents, chunks, rate
// and ETA. rate is in documents per second (0: unknown).
func progressLine(p Progress, rate float64) string {
	pct := 100.0
	if p.Documents > 0 {
		pct = min(100, 100*float64(p.DocumentsDone)/float64(p.Documents))
	}
	const width = 20
	filled := int(pct / 100 * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	eta := "-"
	switch {
	case p.ChunksDone == p.Chunks:
		eta = "done"
	case rate > 0:
		eta = (time.Duration(float64(max(0, p.Documents-p.DocumentsDone))/rate) * time.Second).Round(time.Second).String()
	}
	return fmt.Sprintf("%-30s [%s] %5.1f%% %d/%d docs  %d/%d chunks  %.0f docs/s  ETA %s",
		p.Namespace, bar, pct, p.DocumentsDone, p.Documents, p.ChunksDone, p.Chunks, rate, eta)
}

// rates turns successive progress readings into a documents-per-second rate
// per collection, measured since the collection's first reading.
type rates struct {
	base map[string]reading
}

type reading struct {
	at   time.Time
	docs int64
}

func (r *rates) rate(now time.Time, p Progress) float64 {
	if r.base == nil {
		r.base = map[string]reading{}
	}
	b, ok := r.base[p.Namespace]
	if !ok {
		r.base[p.Namespace] = reading{now, p.DocumentsDone}
		return 0
	}
	el := now.Sub(b.at).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.DocumentsDone-b.docs) / el
}
