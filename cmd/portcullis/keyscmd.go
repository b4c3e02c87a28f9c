package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/identity/totp"
	"github.com/portcullis-auth/portcullis/keys"
)

func keysCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage token signing keys"}
	list := &cobra.Command{
		Use: "list", Short: "List signing keys and their lifecycle state", Args: cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			st, err := keys.List(ctx, a.store, a.cfg.AccessTokenTTL+a.cfg.Keys.RetentionLeeway, time.Now())
			if err != nil {
				return err
			}
			return a.print(st, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tSTATE\tGEN\tCREATED\tACTIVATES\tRETIRED\tEXPIRES")
				for _, k := range st {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, k.Generation,
						k.CreatedAt.Format(time.RFC3339), k.ActivatesAt.Format(time.RFC3339), fmtTime(k.RetiredAt), fmtTime(k.ExpiresAt))
				}
				tw.Flush()
			})
		}),
	}
	var prepublish bool
	rotate := &cobra.Command{
		Use:   "rotate [--prepublish]",
		Short: "Create a new signing key and make it the active key (or pre-publish it with --prepublish)",
		Long: `Create a new signing key. By default it is the active key at once: a running
server signs with it after its next key reload (keys.reload_interval), and
resource servers fetch it from the JWKS when they first see its kid. Use this
for a compromised key.

With --prepublish the key is published in the JWKS now and signs only after
keys.prepublication, so every resource server's cached JWKS holds it before
any token carries it and no verification can fail; scheduled rotation works
this way.`,
		Args: cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			m, _, _, err := a.keyManager()
			if err != nil {
				return err
			}
			if err := m.Reload(ctx); err != nil {
				return err
			}
			var after time.Duration
			if prepublish {
				after = a.cfg.Keys.Prepublication
			}
			k, err := m.Rotate(ctx, after)
			if err != nil {
				return err
			}
			out := map[string]any{"kid": k.ID, "activates_at": k.ActivatesAt.UTC()}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "new signing key %s (%s), signing from %s\n", k.ID, k.Algorithm, k.ActivatesAt.Format(time.RFC3339))
				if prepublish {
					fmt.Fprintf(w, "published now (running servers serve it in their JWKS within %s); it signs from %s, when running servers switch to it\n",
						a.cfg.Keys.ReloadInterval, k.ActivatesAt.Format(time.RFC3339))
				} else {
					fmt.Fprintf(w, "running servers switch to it within %s\n", a.cfg.Keys.ReloadInterval)
				}
			})
		}),
	}
	rotate.Flags().BoolVar(&prepublish, "prepublish", false, "publish the key now, sign with it only after keys.prepublication")
	rewrap := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-encrypt every private key and TOTP secret under PORTCULLIS_SECRETS_KEY (the old key in PORTCULLIS_SECRETS_KEY_OLD)",
		Long: `Re-encrypt every private signing key and every TOTP secret of users' second
factors (confirmed or not) that is sealed under PORTCULLIS_SECRETS_KEY_OLD,
under PORTCULLIS_SECRETS_KEY. Afterwards the old key can be dropped. Run the
servers with the new key (and the old one) first, so that nothing is sealed
under the old key any more; running rewrap again is harmless.

A TOTP factor deleted (or re-sealed by another rewrap) while the command
runs is skipped and counted as such.`,
		Args: cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			sealer, _, _, err := a.sealer()
			if err != nil {
				return err
			}
			// Each signing key, and each batch of TOTP secrets, is
			// re-sealed in one transaction with its audit event.
			n, err := keys.Rewrap(ctx, a.store, sealer, keys.RewrapOptions{Audit: a.audit(), Tx: a.store})
			if err != nil {
				return err
			}
			factors, skipped, err := totp.Rewrap(ctx, a.store, sealer, totp.RewrapOptions{Tx: a.store,
				Record: func(ctx context.Context) error {
					return a.audit().Record(ctx, audit.Event{Action: audit.KeyRewrap, Target: "wrap_key:" + sealer.PrimaryID()})
				}})
			if err != nil {
				return err
			}
			out := map[string]any{"rewrapped": n, "factors_rewrapped": factors, "factors_skipped": skipped,
				"wrap_key_id": sealer.PrimaryID()}
			return a.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "re-sealed %d key(s) and %d TOTP secret(s) under %s\n", n, factors, sealer.PrimaryID())
				if skipped > 0 {
					fmt.Fprintf(w, "skipped %d TOTP secret(s) deleted or re-sealed meanwhile\n", skipped)
				}
			})
		}),
	}
	cmd.AddCommand(list, rotate, rewrap)
	return cmd
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}
