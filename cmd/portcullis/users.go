package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/internal/listpage"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
)

func usersCmd(g *globals, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage users"}

	var username string
	var passwordStdin bool
	var roles []string
	create := &cobra.Command{
		Use:   "create --username U --password-stdin [--role R]...",
		Short: "Create a user; the password is read from standard input",
		Args:  cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			if !passwordStdin {
				return errors.New("--password-stdin is required: passwords are never taken from the command line")
			}
			password, err := readPassword(stdin)
			if err != nil {
				return err
			}
			u, err := a.users().Signup(ctx, username, password, roles)
			if err != nil {
				return identity.AsAppError(err)
			}
			out := map[string]string{"id": u.ID, "username": u.Username}
			return a.print(out, func(w io.Writer) { fmt.Fprintf(w, "created user %s (id %s)\n", u.Username, u.ID) })
		}),
	}
	create.Flags().StringVar(&username, "username", "", "username (required)")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input (required)")
	create.Flags().StringSliceVar(&roles, "role", nil, "role (repeatable)")
	_ = create.MarkFlagRequired("username")

	var listFilter struct{ prefix, role, disabled, locked string }
	list := &cobra.Command{
		Use:   "list [--prefix P] [--role R] [--disabled true|false] [--locked true|false]",
		Short: "List users (in username order; the flags filter)",
		Args:  cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			q := identity.UserQuery{UsernamePrefix: listFilter.prefix, Role: listFilter.role, Limit: listpage.MaxLimit}
			var err error
			if q.Disabled, err = boolFlag("disabled", listFilter.disabled); err != nil {
				return err
			}
			if q.Locked, err = boolFlag("locked", listFilter.locked); err != nil {
				return err
			}
			var us []*identity.User
			for {
				page, err := a.users().ListPage(ctx, q)
				if err != nil {
					return err
				}
				us = append(us, page.Users...)
				if q.Cursor = page.Next; q.Cursor == "" {
					break
				}
			}
			out, err := adminapi.UsersJSON(ctx, a.users(), us)
			if err != nil {
				return err
			}
			return a.print(out, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSERNAME\tROLES\tDISABLED\tLOCKED\tLOCKED_UNTIL\tMFA_REQUIRED\tMFA_ENABLED")
				for _, u := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%s\t%t\t%t\n", u.ID, u.Username, textList(u.Roles), u.Disabled, u.Locked,
						textTime(u.LockedUntil), u.MFARequired, u.MFAEnabled)
				}
				tw.Flush()
			})
		}),
	}
	list.Flags().StringVar(&listFilter.prefix, "prefix", "", "only usernames that start with this (any case)")
	list.Flags().StringVar(&listFilter.role, "role", "", "only users who hold this role")
	list.Flags().StringVar(&listFilter.disabled, "disabled", "", "true: only disabled users; false: only enabled ones")
	list.Flags().StringVar(&listFilter.locked, "locked", "", "true: only users the lockout policy holds back now; false: only the others")
	show := func(ctx context.Context, a *app, u *identity.User) error {
		j, err := adminapi.UserJSONOf(ctx, a.users(), u)
		if err != nil {
			return err
		}
		return a.print(j, func(w io.Writer) { printUser(w, j) })
	}
	get := &cobra.Command{
		Use: "get U", Short: "Show a user (by username or id)", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			u, err := resolveUser(ctx, a.users(), args[0])
			if err != nil {
				return err
			}
			return show(ctx, a, u)
		}),
	}
	update := func(use, short string, nargs cobra.PositionalArgs, change func(args []string) identity.Change) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: nargs,
			RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
				u, err := resolveUser(ctx, a.users(), args[0])
				if err != nil {
					return err
				}
				u, err = a.users().Update(ctx, u.ID, change(args))
				if err != nil {
					return identity.AsAppError(err)
				}
				return show(ctx, a, u)
			}),
		}
	}
	yes, no := true, false
	disable := update("disable U", "Disable a user: no new tokens, refresh tokens stop working", cobra.ExactArgs(1),
		func([]string) identity.Change { return identity.Change{Disabled: &yes} })
	enable := update("enable U", "Enable a user and clear any lockout", cobra.ExactArgs(1),
		func([]string) identity.Change { return identity.Change{Disabled: &no, Unlock: true} })
	unlock := update("unlock U", "Clear a user's lockout counters: every network's lock, the account-wide delay (and the trusted networks)", cobra.ExactArgs(1),
		func([]string) identity.Change { return identity.Change{Unlock: true} })
	setRoles := update("set-roles U [R]...", "Replace a user's roles", cobra.MinimumNArgs(1),
		func(args []string) identity.Change { r := args[1:]; return identity.Change{Roles: &r} })
	var setPasswordStdin bool
	setPassword := &cobra.Command{
		Use: "set-password U --password-stdin",
		Short: "Replace a user's password, read from standard input: the password policy applies, " +
			"the user's grants (refresh tokens and their access tokens) are revoked and the lockout counters cleared",
		Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			if !setPasswordStdin {
				return errors.New("--password-stdin is required: passwords are never taken from the command line")
			}
			password, err := readPassword(stdin)
			if err != nil {
				return err
			}
			u, err := resolveUser(ctx, a.users(), args[0])
			if err != nil {
				return err
			}
			u, err = a.users().Update(ctx, u.ID, identity.Change{Password: &password})
			if err != nil {
				return identity.AsAppError(err)
			}
			return show(ctx, a, u)
		}),
	}
	setPassword.Flags().BoolVar(&setPasswordStdin, "password-stdin", false, "read the new password from standard input (required)")
	var mfaRequired bool
	upd := update("update U --mfa-required=true|false", "Change a user's settings: --mfa-required makes every login of the user prove a second factor "+
		"(enrolling one at the next login if the user has none)", cobra.ExactArgs(1),
		func([]string) identity.Change { return identity.Change{MFARequired: &mfaRequired} })
	upd.Flags().BoolVar(&mfaRequired, "mfa-required", false, "require a second factor at every login of the user (=false stops requiring it)")
	_ = upd.MarkFlagRequired("mfa-required")
	resetMFA := &cobra.Command{
		Use: "reset-mfa U", Short: "Delete every second factor and recovery code of a user (a lost device); the user enrols again", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			u, err := resolveUser(ctx, a.users(), args[0])
			if err != nil {
				return err
			}
			if err := a.users().ResetFactors(ctx, u.ID); err != nil {
				return err
			}
			return a.print(map[string]string{"reset_mfa": u.ID}, func(w io.Writer) {
				fmt.Fprintf(w, "deleted every second factor and recovery code of user %s (id %s)\n", u.Username, u.ID)
			})
		}),
	}
	del := &cobra.Command{
		Use: "delete U", Short: "Delete a user", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			u, err := resolveUser(ctx, a.users(), args[0])
			if err != nil {
				return err
			}
			if err := a.users().Delete(ctx, u.ID); err != nil {
				return err
			}
			return a.print(map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintln(w, "deleted user", args[0]) })
		}),
	}
	cmd.AddCommand(create, list, get, disable, enable, unlock, del, setRoles, setPassword, upd, resetMFA, importCmd(g, stdin, stdout, stderr))
	return cmd
}

// importCmd is "users import FILE": users with their existing password
// hashes, from JSON Lines (identity.Service.Import).
func importCmd(g *globals, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var update bool
	var format string
	cmd := &cobra.Command{
		Use: "import FILE [--update] [--format jsonl|csv]",
		Short: "Import users with their existing bcrypt or argon2id hashes from JSON Lines (FILE, or - for standard input): " +
			`one {"username","password_hash","roles","disabled"} per line; or from CSV with a header line (a FILE ending in .csv, or --format csv)`,
		Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			opts := identity.ImportOptions{Update: update, Format: identity.ImportFormat(format)}
			switch {
			case format == "" && strings.HasSuffix(strings.ToLower(args[0]), ".csv"):
				opts.Format = identity.ImportCSV
			case format == "", opts.Format == identity.ImportJSONLines, opts.Format == identity.ImportCSV:
			default:
				return errors.New("--format must be jsonl or csv")
			}
			in := stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return fmt.Errorf("open the import file: %w", err)
				}
				defer f.Close()
				in = f
			}
			report, err := a.users().Import(ctx, in, opts)
			if perr := a.print(report, func(w io.Writer) { printImportReport(w, report) }); perr != nil && err == nil {
				err = perr
			}
			switch {
			case err != nil:
				return err
			case report.Failed > 0:
				return fmt.Errorf("%d of the lines failed and were not imported; the others were", report.Failed)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&update, "update", false, "replace the hash, roles and disabled state of users that exist (default: skip them)")
	cmd.Flags().StringVar(&format, "format", "", "jsonl or csv (default: csv for a FILE ending in .csv, jsonl otherwise)")
	return cmd
}

// printImportReport writes the lines that were not simply imported, then
// the counts.
func printImportReport(w io.Writer, r *identity.ImportReport) {
	for _, l := range r.Lines {
		if l.Outcome == identity.ImportImported {
			continue
		}
		name := ""
		if l.Username != "" {
			name = " (" + l.Username + ")"
		}
		reason := ""
		if l.Reason != "" {
			reason = ": " + l.Reason
		}
		fmt.Fprintf(w, "line %d%s: %s%s\n", l.Line, name, l.Outcome, reason)
	}
	if len(r.IgnoredColumns) > 0 {
		fmt.Fprintf(w, "ignored columns: %s\n", strings.Join(r.IgnoredColumns, ", "))
	}
	fmt.Fprintf(w, "imported %d, updated %d, skipped %d, failed %d\n", r.Imported, r.Updated, r.Skipped, r.Failed)
	if r.StoppedAtLine > 0 {
		fmt.Fprintf(w, "stopped at line %d: nothing from it on was imported\n", r.StoppedAtLine)
	}
}

// resolveUser finds the user a command-line argument names: a user ID if
// arg has the form of one (identity.IDShaped), else a username. The two
// never overlap, since sign-up refuses ID-shaped usernames, and an ID is
// never looked up as a username: retrying "users delete ID" cannot remove
// another account.
func resolveUser(ctx context.Context, users *identity.Service, arg string) (*identity.User, error) {
	if identity.IDShaped(arg) {
		return users.Get(ctx, arg)
	}
	return users.GetByUsername(ctx, arg)
}

// readPassword reads one line (at most 4 KiB) from r, without its line
// ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(io.LimitReader(r, 4097), 4097).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(line) > 4096 {
		return "", errors.New("password on standard input is longer than 4096 bytes")
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

// printUser writes u as "member:\tvalue" lines, aligned, with the JSON
// member names and the values as in users list (textList, textTime).
func printUser(w io.Writer, u adminapi.UserJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\n", u.ID)
	fmt.Fprintf(tw, "username:\t%s\n", u.Username)
	fmt.Fprintf(tw, "roles:\t%s\n", textList(u.Roles))
	fmt.Fprintf(tw, "disabled:\t%t\n", u.Disabled)
	fmt.Fprintf(tw, "locked:\t%t\n", u.Locked)
	fmt.Fprintf(tw, "locked_until:\t%s\n", textTime(u.LockedUntil))
	fmt.Fprintf(tw, "locked_networks:\t%d\n", u.LockedNetworks)
	fmt.Fprintf(tw, "mfa_required:\t%t\n", u.MFARequired)
	fmt.Fprintf(tw, "mfa_enabled:\t%t\n", u.MFAEnabled)
	fmt.Fprintf(tw, "created_at:\t%s\n", textTime(&u.CreatedAt))
	fmt.Fprintf(tw, "updated_at:\t%s\n", textTime(&u.UpdatedAt))
	tw.Flush()
}

// boolFlag reads the tri-state flag name: "" (not given), "true" or
// "false".
func boolFlag(name, v string) (*bool, error) {
	switch v {
	case "":
		return nil, nil
	case "true", "false":
		b := v == "true"
		return &b, nil
	}
	return nil, fmt.Errorf("--%s must be true or false", name)
}
