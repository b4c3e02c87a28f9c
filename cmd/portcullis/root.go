package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/portcullis-auth/portcullis/audit"
)

// globals are the flags every subcommand accepts.
type globals struct {
	environ    []string
	configFile string
	output     string
	flags      *pflag.FlagSet
}

// configFlags maps persistent flags to configuration keys; only flags the
// user set become overrides (flags > env > file > defaults).
var configFlags = []struct{ flag, key, usage string }{
	{"dsn", "dsn", "database DSN: sqlite://PATH or mysql://USER:PASS@tcp(HOST:PORT)/DB?parseTime=true"},
	{"issuer", "issuer", "issuer URL (the iss of every token)"},
	{"public-addr", "public_addr", "public listener address"},
	{"admin-addr", "admin_addr", "admin listener address"},
	{"log-level", "log.level", "log level: debug, info, warn, error"},
	{"log-format", "log.format", "log format: text or json"},
}

func (g *globals) overrides() map[string]string {
	out := map[string]string{}
	for _, f := range configFlags {
		if fl := g.flags.Lookup(f.flag); fl != nil && fl.Changed {
			out[f.key] = fl.Value.String()
		}
	}
	return out
}

// run is the testable main: it parses args, runs one subcommand and
// returns its error.
func run(ctx context.Context, args, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := &globals{environ: environ}
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "Portcullis: an OAuth2 authorization server with users, passwords and JWT access tokens",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", g.output)
			}
			return nil
		},
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "YAML configuration file (see configs/portcullis.yaml)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	for _, f := range configFlags {
		pf.String(f.flag, "", f.usage)
	}
	g.flags = pf

	root.AddCommand(
		serveCmd(g, stdout, stderr),
		migrateCmd(g, stdout, stderr),
		clientsCmd(g, stdout, stderr),
		usersCmd(g, stdin, stdout, stderr),
		keysCmd(g, stdout, stderr),
		auditCmd(g, stdout, stderr),
	)
	requireSubcommand(root)
	return root.ExecuteContext(ctx)
}

// requireSubcommand makes every command group (root, clients, users,
// keys) fail with a one-line error when called without a known subcommand,
// instead of printing help and exiting 0; --help still prints help.
func requireSubcommand(cmd *cobra.Command) {
	if !cmd.HasSubCommands() {
		return
	}
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		return fmt.Errorf("%s needs a subcommand; see %s --help", c.CommandPath(), c.CommandPath())
	}
	for _, sub := range cmd.Commands() {
		requireSubcommand(sub)
	}
}

// withApp opens the app for a subcommand and closes it afterwards. Every
// subcommand but migrate first requires the schema to be current.
func withApp(g *globals, stdout, stderr io.Writer, fn func(ctx context.Context, a *app, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		// Only migrate and serve change the schema, which running servers
		// share: the other commands refuse a database that is not at this
		// binary's version, before changing anything in it, instead of
		// migrating it as a side effect.
		a, err := openApp(cmd.Context(), g, stdout, stderr, cmd.Name() != "migrate", false)
		if err != nil {
			return err
		}
		defer a.Close()
		// Changes made by CLI commands are audited as the CLI's.
		return fn(audit.WithActor(cmd.Context(), audit.ActorCLI), a, args)
	}
}

// print writes v as one JSON document with --output json, or calls text.
func (a *app) print(v any, text func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(a.stdout)
	return nil
}

func migrateCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations",
		Args:  cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			applied, err := a.migrate(ctx)
			if err != nil {
				return err
			}
			if applied == nil {
				applied = []string{}
			}
			return a.print(map[string]any{"applied": applied}, func(w io.Writer) {
				if len(applied) == 0 {
					fmt.Fprintln(w, "database is up to date")
				}
				for _, m := range applied {
					fmt.Fprintln(w, "applied", m)
				}
			})
		}),
	}
}
