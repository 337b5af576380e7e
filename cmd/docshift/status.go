package main

import (
	"context"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/docshift/docshift/producer"
	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/topic"
)

// runStatus prints the recorded state: per collection the snapshot's phase,
// documents, chunks, rate and the time it took or is taking; per change
// stream whether it is catching up or live, its lag and last checkpoint.
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
	cl, err := topic.NewClient(ctx, tcfg, e.log)
	if err != nil {
		return err
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, tcfg.State(), tcfg.Streams())
	if err != nil {
		return fmt.Errorf("listing docshift's topics: %w", err)
	}
	if !topics.Has(tcfg.State()) {
		fmt.Fprintf(e.stdout, "no snapshot recorded (no topic %s)\n", tcfg.State())
	} else if err := printSnapshot(ctx, e, tcfg); err != nil {
		return err
	}
	if !topics.Has(tcfg.Streams()) {
		fmt.Fprintf(e.stdout, "no change stream recorded (no topic %s)\n", tcfg.Streams())
		return nil
	}
	return printStreams(ctx, e, tcfg)
}

// liveLag is how far behind a stream may be and still be called live.
const liveLag = 30 * time.Second

func printStreams(ctx context.Context, e *env, tcfg topic.Config) error {
	cps, err := producer.ReadCheckpoints(ctx, tcfg)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cps))
	for n := range cps {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tPHASE\tEVENTS\tLAST CHANGE\tLAG\tCHECKPOINT AT\tNOTE")
	for _, n := range names {
		cp := cps[n]
		last := time.Unix(int64(cp.StartTime().T), 0)
		lag := time.Since(last)
		phase := "live"
		if lag > liveLag && time.Since(cp.At) > liveLag {
			phase = "stopped"
		} else if lag > liveLag {
			phase = "catching up"
		}
		note := ""
		switch {
		case cp.ResnapshotSince != 0:
			note = "restarted after lost history; re-snapshot unfinished"
		case cp.HistoryLost != "":
			note = "restarted after lost history"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n, phase, cp.Events, last.UTC().Format(time.RFC3339),
			lag.Round(time.Second), cp.At.Format(time.RFC3339), note)
	}
	return tw.Flush()
}

func printSnapshot(ctx context.Context, e *env, tcfg topic.Config) error {
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
