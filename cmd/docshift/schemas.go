package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
)

func runSchemas(ctx context.Context, args []string, e *env) error {
	usage := func() error {
		fmt.Fprintln(e.stderr, "Usage: docshift schemas infer --source DB.COLL[,DB.COLL...] [flags]")
		fmt.Fprintln(e.stderr, "       docshift schemas ddl --mapping FILE")
		return errUsage
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "ddl":
		return runSchemasDDL(args[1:], e)
	case "infer":
		return runSchemasInfer(ctx, args[1:], e)
	}
	fmt.Fprintf(e.stderr, "docshift schemas: unknown subcommand %q\n", args[0])
	return usage()
}

func runSchemasDDL(args []string, e *env) error {
	fs := newFlagSet("schemas ddl", "schemas ddl --mapping FILE")
	mapping := fs.String("mapping", "", "mapping file (YAML)")
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	m, err := loadMapping(*mapping)
	if err != nil {
		return err
	}
	for _, c := range m.Collections {
		fmt.Fprintf(e.stdout, "-- %s\n", c.Source)
		for _, stmt := range c.TargetTable().DDL() {
			fmt.Fprintf(e.stdout, "%s;\n", stmt)
		}
	}
	return nil
}

func runSchemasInfer(ctx context.Context, args []string, e *env) error {
	fs := newFlagSet("schemas infer", "schemas infer --source DB.COLL[,DB.COLL...] [flags]")
	sources := fs.String("source", "", "collections to sample, comma-separated database.collection")
	sample := fs.Int("sample", 1000, "documents sampled per collection ($sample)")
	tenantField := fs.String("tenant-field", "tenant_id", "the document field (path) that names the tenant")
	tenantDB := fs.Bool("tenant-database", false, "the database name is the tenant (database per tenant)")
	tenantConst := fs.String("tenant-constant", "", "one tenant for every document")
	out := fs.String("out", "", "write the proposed mapping to this file (default: stdout)")
	mcfg := source.DefaultConfig()
	mcfg.RegisterFlags(fs)
	if err := parse(fs, args, e, false); err != nil {
		return err
	}
	if err := validate(fs, e, &mcfg); err != nil {
		return err
	}
	var nss []schemas.Namespace
	for _, s := range strings.Split(*sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ns, err := schemas.ParseNamespace(s)
		if err != nil {
			fmt.Fprintf(e.stderr, "invalid flag: source: %v\n", err)
			fs.Usage()
			return errUsage
		}
		nss = append(nss, ns)
	}
	if len(nss) == 0 || *sample < 1 {
		fmt.Fprintln(e.stderr, "invalid flag: --source names no collection, or --sample is below 1")
		fs.Usage()
		return errUsage
	}
	tenant := schemas.TenantRule{Field: *tenantField}
	if *tenantDB {
		tenant = schemas.TenantRule{Database: true}
	} else if *tenantConst != "" {
		tenant = schemas.TenantRule{Constant: *tenantConst}
	}
	mc, err := source.Connect(ctx, mcfg)
	if err != nil {
		return err
	}
	defer mc.Disconnect(context.WithoutCancel(ctx))
	inf, err := schemas.Infer(ctx, mc, nss, schemas.InferOptions{Sample: *sample, Tenant: tenant})
	if err != nil {
		return err
	}
	inf.WriteReport(e.stderr)
	w := e.stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("writing mapping: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := inf.WriteYAML(w); err != nil {
		return fmt.Errorf("writing mapping: %w", err)
	}
	if *out != "" {
		fmt.Fprintf(e.stderr, "wrote %s\n", *out)
	}
	return nil
}
