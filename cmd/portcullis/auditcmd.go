package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/audit"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
)

// auditCmd is "portcullis audit": reading the audit trail.
func auditCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit trail of admin changes and security events"}
	var f struct {
		actor, target, action, since, until, cursor string
		limit                                       int
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit events, oldest first, one page at a time (as GET /admin/audit)",
		Long: fmt.Sprintf(`List audit events, oldest first. Filters match exactly; --since and --until
take RFC 3339 times (since <= time < until). A page holds --limit events
(default %d, at most %d); when more follow, the text output ends with the
cursor to pass to --cursor for the next page (JSON: next_cursor).`, audit.DefaultPageSize, audit.MaxPageSize),
		Args: cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			params := map[string]string{"actor": f.actor, "target": f.target, "action": f.action,
				"since": f.since, "until": f.until, "cursor": f.cursor}
			if f.limit != 0 {
				params["limit"] = fmt.Sprint(f.limit)
			}
			q, err := adminapi.AuditQuery(func(k string) string { return params[k] })
			if err != nil {
				return err
			}
			page, err := a.audit().List(ctx, q)
			if err != nil {
				return err
			}
			return a.print(page, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tTIME\tACTOR\tACTION\tTARGET\tOUTCOME\tCLIENT IP\tREQUEST ID")
				for _, e := range page.Events {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Format(time.RFC3339), e.Actor, e.Action,
						dash(e.Target), e.Outcome, dash(e.ClientIP), dash(e.RequestID))
				}
				tw.Flush()
				if page.NextCursor != "" {
					fmt.Fprintf(w, "more: --cursor %s\n", page.NextCursor)
				}
			})
		}),
	}
	fl := list.Flags()
	fl.StringVar(&f.actor, "actor", "", `only events of this actor ("cli", "client:ID", "user:ID", "system", "anonymous")`)
	fl.StringVar(&f.target, "target", "", `only events on this target ("user:ID", "client:ID", "key:KID")`)
	fl.StringVar(&f.action, "action", "", `only events of this action (e.g. "login", "user.update")`)
	fl.StringVar(&f.since, "since", "", "only events at or after this RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "only events before this RFC 3339 time")
	fl.StringVar(&f.cursor, "cursor", "", "continue after the page that returned this cursor")
	fl.IntVar(&f.limit, "limit", 0, fmt.Sprintf("page size (default %d, at most %d)", audit.DefaultPageSize, audit.MaxPageSize))
	cmd.AddCommand(list)
	return cmd
}

// dash shows an empty field as "-" in tables.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
