package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/docshift/docshift/consumer"
	"github.com/docshift/docshift/demo"
	"github.com/docshift/docshift/monitor"
	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/snapshot"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/target"
	"github.com/docshift/docshift/topic"
	"github.com/docshift/docshift/verify"
)

func loadMapping(path string) (*schemas.Mapping, error) {
	if path == "" {
		return nil, errors.New("--mapping is required (a YAML mapping file; see examples/)")
	}
	return schemas.LoadMapping(path)
}

// mappedSource loads the mapping file and connects to the MongoDB it maps:
// how every command that reads the source starts.
func mappedSource(ctx context.Context, path string, cfg source.Config) (*schemas.Mapping, *mongo.Client, error) {
	m, err := loadMapping(path)
	if err != nil {
		return nil, nil, err
	}
	mc, err := source.Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return m, mc, nil
}

func runSnapshot(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("snapshot", "snapshot --mapping FILE [--worker] [--restart] [flags]")
	mapping := fs.String("mapping", "", "mapping file (YAML)")
	mcfg, tcfg, scfg := source.DefaultConfig(), topic.DefaultConfig(), snapshot.DefaultConfig()
	var moncfg monitor.Config
	mcfg.RegisterFlags(fs)
	tcfg.RegisterFlags(fs)
	scfg.RegisterFlags(fs)
	moncfg.RegisterFlags(fs, "")
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg, &tcfg, &scfg, &moncfg); err != nil {
		return err
	}
	m, mc, err := mappedSource(ctx, *mapping, mcfg)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.WithoutCancel(ctx))
	mon := monitor.New()
	if err := mon.Serve(ctx, moncfg, e.log); err != nil {
		return err
	}
	stats, err := snapshot.New(scfg, m, mc, tcfg, e.log, mon.Registry, e.stderr).Run(ctx)
	for _, st := range stats {
		fmt.Fprintf(e.stdout, "snapshot %s -> %s: %d documents in %d chunks in %s\n",
			st.Source, st.Topic, st.Documents, st.Chunks, st.Elapsed.Round(time.Millisecond))
	}
	return err
}

func runConsume(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("consume", "consume [flags]")
	tcfg, pcfg, ccfg := topic.DefaultConfig(), target.DefaultConfig(), consumer.DefaultConfig()
	var mcfg monitor.Config
	tcfg.RegisterFlags(fs)
	pcfg.RegisterFlags(fs)
	ccfg.RegisterFlags(fs)
	mcfg.RegisterFlags(fs, ":9464")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for benchmarks)")
	memProfile := fs.String("memprofile", "", "write a heap profile at the peak of the live heap to this file (for benchmarks)")
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &tcfg, &pcfg, &ccfg, &mcfg); err != nil {
		return err
	}
	if *memProfile != "" {
		stop, err := startHeapProfile(*memProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	pool, err := target.Connect(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	mon := monitor.New()
	c, err := consumer.New(ctx, ccfg, tcfg, pool, e.log, mon.Registry)
	if err != nil {
		return err
	}
	defer c.Close()
	mon.AddCheck("consumer", c.Ready)
	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	if err := mon.Serve(mctx, mcfg, e.log); err != nil {
		return err
	}
	return c.Run(ctx)
}

func runVerify(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("verify", "verify --mapping FILE [flags]")
	mapping := fs.String("mapping", "", "mapping file (YAML)")
	mcfg, pcfg := source.DefaultConfig(), target.DefaultConfig()
	mcfg.RegisterFlags(fs)
	pcfg.RegisterFlags(fs)
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg, &pcfg); err != nil {
		return err
	}
	m, mc, err := mappedSource(ctx, *mapping, mcfg)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.WithoutCancel(ctx))
	pool, err := target.Connect(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := verify.Counts(ctx, m, mc, pool)
	if err != nil {
		return err
	}
	if err := r.Print(e.stdout); err != nil {
		return err
	}
	if !r.OK() {
		return errors.New("source and target differ")
	}
	return nil
}

func runSeed(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("seed", "seed [flags]")
	mcfg, dcfg := source.DefaultConfig(), demo.DefaultConfig()
	mcfg.RegisterFlags(fs)
	fs.IntVar(&dcfg.Tenants, "tenants", dcfg.Tenants, "number of tenants")
	fs.IntVar(&dcfg.Documents, "documents", dcfg.Documents, "documents of the first tenant (each next tenant has one more)")
	writeMapping := fs.String("write-mapping", "", "also write the demo mapping file to this path")
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg); err != nil {
		return err
	}
	if dcfg.Tenants < 1 || dcfg.Documents < 1 {
		fmt.Fprintln(e.stderr, "invalid flag: tenants and documents must be at least 1")
		fs.Usage()
		return errUsage
	}
	mc, err := source.Connect(ctx, mcfg)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.WithoutCancel(ctx))
	counts, err := demo.Seed(ctx, mc, dcfg)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	fmt.Fprintf(e.stdout, "seeded %s.%s: %d documents for %d tenants\n", dcfg.Database, dcfg.Collection, total, len(counts))
	if *writeMapping != "" {
		if err := os.WriteFile(*writeMapping, []byte(demo.Mapping(dcfg)), 0o644); err != nil {
			return fmt.Errorf("writing mapping: %w", err)
		}
	}
	return nil
}

// startCPUProfile writes a CPU profile to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
