// Command docshift moves a live, multi-tenant MongoDB into PostgreSQL through
// Kafka. This file only wires flags to the packages that do the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, env *env) error
}

var commands = []command{
	{"snapshot", "read every mapped collection into Kafka", runSnapshot},
	{"produce", "follow change streams into Kafka, checkpointed in the same transactions", runProduce},
	{"consume", "apply records from Kafka to PostgreSQL (one member of the sink group)", runConsume},
	{"verify", "compare per-tenant counts of source and target", runVerify},
	{"schemas", "`schemas infer` proposes a mapping from sampled documents; `schemas ddl` prints a mapping's DDL", runSchemas},
	{"seed", "generate the demo data set in MongoDB", runSeed},
	{"status", "print the recorded progress of the snapshot (from the state topic)", runStatus},
}

// env is what every command gets: its output streams and logger.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
}

// errUsage marks an error that was already reported with usage text.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		e := &env{stdout: stdout, stderr: stderr,
			log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))}
		err := c.run(ctx, args[1:], e)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			fmt.Fprintf(stderr, "docshift %s: interrupted\n", c.name)
			return 130
		default:
			fmt.Fprintf(stderr, "docshift %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "docshift: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "docshift moves a live MongoDB into PostgreSQL through Kafka.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: docshift <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]command, len(commands))
	copy(names, commands)
	sort.Slice(names, func(i, j int) bool { return names[i].name < names[j].name })
	for _, c := range names {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `docshift <command> -h` for a command's flags.")
	fmt.Fprintln(w, "Environment: MONGO_URI, KAFKA_SEEDS, PG_URL give default addresses; DOCSHIFT_LOG_LEVEL (debug, info, warn, error).")
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("DOCSHIFT_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// parse parses a command's flags; on a bad flag it prints the error and the
// command's usage and returns errUsage. Positional arguments are refused
// unless allowArgs.
func parse(fs *flag.FlagSet, args []string, e *env, allowArgs bool) error {
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage // flag already printed the error and the usage
	}
	if !allowArgs && fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// validator is any component Config.
type validator interface{ Validate() error }

// validate checks configs; a bad value prints usage.
func validate(fs *flag.FlagSet, e *env, cfgs ...validator) error {
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			fmt.Fprintf(e.stderr, "invalid flag: %v\n", err)
			fs.Usage()
			return errUsage
		}
	}
	return nil
}

func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("docshift "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: docshift %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}
