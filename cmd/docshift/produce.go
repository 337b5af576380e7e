package main

import (
	"context"
	"io"

	"github.com/prometheus/client_golang/prometheus"

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
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg, &tcfg, &pcfg, &moncfg); err != nil {
		return err
	}
	m, err := loadMapping(*mapping)
	if err != nil {
		return err
	}
	mc, err := source.Connect(ctx, mcfg)
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
	// A lost history is repaired by snapshotting the stream's collections
	// again, in a new snapshot run of this process.
	p.Resnapshot = func(ctx context.Context, colls []schemas.Namespace) error {
		sub := &schemas.Mapping{}
		for _, ns := range colls {
			if c := m.Lookup(ns); c != nil {
				sub.Collections = append(sub.Collections, *c)
			}
		}
		cfg := scfg
		cfg.Restart = true
		_, err := snapshot.New(cfg, sub, mc, tcfg, e.log, prometheus.NewRegistry(), io.Discard).Run(ctx)
		return err
	}
	return p.Run(ctx)
}
