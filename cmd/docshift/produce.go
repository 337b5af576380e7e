package main

import (
	"context"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/monitor"
	"github.com/docshift/docshift/producer"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

func runProduce(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("produce", "produce --mapping FILE [flags]")
	mapping := fs.String("mapping", "", "mapping file (YAML)")
	mcfg, tcfg, pcfg, scfg := source.DefaultConfig(), topic.DefaultConfig(), producer.DefaultConfig(), snapshot.DefaultConfig()
	var moncfg monitor.Config
	mcfg.RegisterFlags(fs)
	tcfg.RegisterFlags(fs)
	pcfg.RegisterFlags(fs)
	moncfg.RegisterFlags(fs, ":9465")
	// The snapshot after a lost history runs in this process, under its own
	// worker id: a snapshot process on the same host keeps its own.
	scfg.WorkerID += "-produce"
	fs.IntVar(&scfg.Workers, "resnapshot-workers", scfg.Workers, "chunk readers of the snapshot after a lost history (--on-history-lost=resnapshot)")
	fs.IntVar(&scfg.ChunkDocs, "resnapshot-chunk-docs", scfg.ChunkDocs, "target documents per chunk of the snapshot after a lost history")
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg, &tcfg, &pcfg, &moncfg, resnapshotConfig{&scfg}); err != nil {
		return err
	}
	m, mc, err := mappedSource(ctx, *mapping, mcfg)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.WithoutCancel(ctx))
	kc, err := topic.NewClient(ctx, tcfg, e.log)
	if err != nil {
		return err
	}
	defer kc.Close()
	mon := monitor.New()
	if err := mon.Serve(ctx, moncfg, e.log); err != nil {
		return err
	}
	p, err := producer.New(pcfg, m, mc, kc, tcfg, e.log, mon.Registry)
	if err != nil {
		return err
	}
	// A stream with no checkpoint starts where the snapshot started, so no
	// change the snapshot's chunks could have missed is missed: the
	// producer may start before, during or after the snapshot.
	p.StartAt = func(ctx context.Context) (bson.Timestamp, bool, error) {
		if err := topic.EnsureState(ctx, kc, tcfg); err != nil { // no snapshot yet: an empty state
			return bson.Timestamp{}, false, err
		}
		st, err := snapshot.ReadState(ctx, tcfg, e.log)
		if err != nil || st.Run == 0 {
			return bson.Timestamp{}, false, err
		}
		v := st.StartVersion
		for _, d := range st.Done { // runs recorded without a start: the earliest chunk
			if v == 0 || d.Version < v {
				v = d.Version
			}
		}
		return source.After(schemas.TimestampOf(v)), v != 0, nil
	}
	// A lost history is repaired by snapshotting the stream's collections
	// again, in a snapshot run of this process started after the loss: the
	// recorded run if it did (a producer stopped during it resumes it, from
	// its last finished chunk), else a new one.
	p.Resnapshot = func(ctx context.Context, colls []schemas.Namespace, since bson.Timestamp) error {
		sub := &schemas.Mapping{}
		for _, ns := range colls {
			if c := m.Lookup(ns); c != nil {
				sub.Collections = append(sub.Collections, *c)
			}
		}
		cfg := scfg
		cfg.RestartBefore = schemas.Version(since)
		cfg.Oversize = pcfg.Oversize // the producer's --oversize covers its snapshot too
		_, err := snapshot.New(cfg, sub, mc, tcfg, e.log, prometheus.NewRegistry(), io.Discard).Run(ctx)
		return err
	}
	return p.Run(ctx)
}

// resnapshotConfig checks the snapshot settings the producer takes, by
// their names in its flags.
type resnapshotConfig struct{ *snapshot.Config }

func (c resnapshotConfig) Validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("resnapshot-workers: %d, want at least 1", c.Workers)
	case c.ChunkDocs < 1:
		return fmt.Errorf("resnapshot-chunk-docs: %d, want at least 1", c.ChunkDocs)
	}
	return c.Config.Validate()
}
