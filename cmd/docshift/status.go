package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/topic"
)

// runStatus prints the recorded state of the snapshot: per collection its
// phase, documents, chunks, rate and the time it took or is taking.
func runStatus(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("status", "status [flags]")
	tcfg := topic.DefaultConfig()
	tcfg.RegisterFlags(fs)
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &tcfg); err != nil {
		return err
	}
	st, err := snapshot.ReadState(ctx, tcfg, e.log)
	if err != nil {
		return err
	}
	if st.Run == 0 {
		fmt.Fprintf(e.stdout, "no snapshot recorded in %s\n", tcfg.State())
		return nil
	}
	phase := "snapshotting"
	if !st.Complete.IsZero() {
		phase = "snapshot complete"
	}
	fmt.Fprintf(e.stdout, "snapshot run %d started %s: %s\n", st.Run, st.Started.Format(time.RFC3339), phase)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COLLECTION\tPHASE\tDOCUMENTS\tPLANNED\tCHUNKS\tDOCS/S\tELAPSED")
	for _, p := range st.Progress() {
		phase := "planned"
		switch {
		case p.ChunksDone == p.Chunks:
			phase = "snapshotted"
		case p.ChunksDone > 0:
			phase = "snapshotting"
		}
		end := p.Last
		if p.ChunksDone < p.Chunks {
			end = time.Now()
		}
		el := end.Sub(st.Started)
		rate := 0.0
		if p.ChunksDone > 0 && el > 0 {
			rate = float64(p.DocumentsDone) / el.Seconds()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d/%d\t%.0f\t%s\n", p.Namespace, phase, p.DocumentsDone, p.Documents,
			p.ChunksDone, p.Chunks, rate, el.Round(time.Second))
	}
	return tw.Flush()
}
