package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/portcullis-auth/portcullis/internal/listpage"
	"github.com/portcullis-auth/portcullis/internal/server/adminapi"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

func clientsCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "Manage OAuth2 clients"}

	var spec clients.Spec
	var authMethod string
	var quiet bool
	create := &cobra.Command{
		Use:   "create --name N [--public] [--grant-type G]... [--scope S]... [--audience A]... [--introspect] [--cors-origin O]... [--dpop-bound-access-tokens] [--mfa-required]",
		Short: "Register a client; a confidential client's secret is printed once",
		Args:  cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			spec.AuthMethod = authMethod
			c, secret, err := a.clients().Create(ctx, spec)
			if err != nil {
				return err
			}
			if len(c.Audience) == 0 {
				fmt.Fprintln(stderr, "warning: client has no audience; its access tokens carry only default_audience (or, with scope admin, the admin API's); register its resource servers with --audience")
			}
			if quiet && !a.json {
				fmt.Fprintln(a.stdout, c.ID)
				if secret != "" {
					fmt.Fprintln(a.stdout, secret)
				}
				return nil
			}
			return a.print(adminapi.NewClientJSON(c, secret), func(w io.Writer) {
				printClient(w, adminapi.NewClientJSON(c, secret))
				if secret != "" {
					fmt.Fprintln(w, "\nStore the client secret now: it is not shown again.")
				}
			})
		}),
	}
	f := create.Flags()
	f.StringVar(&spec.Name, "name", "", "client name (required)")
	f.BoolVar(&spec.Public, "public", false, "public client: no secret, token_endpoint_auth_method none")
	f.StringVar(&authMethod, "auth-method", "", "token_endpoint_auth_method: client_secret_basic or client_secret_post (only that method is accepted) or none; "+
		"default: none with --public, otherwise both client_secret_basic and client_secret_post are accepted")
	f.StringSliceVar(&spec.GrantTypes, "grant-type", nil, grantTypeUsage+"; default password and refresh_token")
	f.StringSliceVar(&spec.Scopes, "scope", nil, "allowed scope (repeatable)")
	f.StringSliceVar(&spec.Audience, "audience", nil, "audience of its access tokens (repeatable)")
	f.BoolVar(&spec.IntrospectionAllowed, "introspect", false, introspectUsage)
	f.StringSliceVar(&spec.CORSOrigins, "cors-origin", nil, corsOriginUsage)
	f.StringVar(&spec.AccessTokenSigningAlg, "access-token-signed-response-alg", "", accessTokenAlgUsage)
	f.BoolVar(&spec.DPoPBoundAccessTokens, "dpop-bound-access-tokens", false, dpopBoundUsage)
	f.BoolVar(&spec.MFARequired, "mfa-required", false, mfaRequiredUsage)
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the client_id (and, for a confidential client, the secret on a second line)")
	_ = create.MarkFlagRequired("name")

	var listFilter clients.Query
	list := &cobra.Command{
		Use:   "list [--prefix P] [--name-prefix N] [--grant-type G] [--scope S]",
		Short: "List clients (in client ID order; the flags filter)",
		Args:  cobra.NoArgs,
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, _ []string) error {
			q := listFilter
			q.Limit = listpage.MaxLimit
			var cs []*clients.Client
			for {
				page, err := a.clients().ListPage(ctx, q)
				if err != nil {
					return err
				}
				cs = append(cs, page.Clients...)
				if q.Cursor = page.Next; q.Cursor == "" {
					break
				}
			}
			out := make([]adminapi.ClientJSON, 0, len(cs))
			for _, c := range cs {
				out = append(out, adminapi.NewClientJSON(c, ""))
			}
			return a.print(out, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tNAME\tAUTH_METHODS\tGRANT_TYPES\tSCOPE\tAUDIENCE\tINTROSPECT\tDPOP\tMFA")
				for _, c := range out {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%t\t%t\t%t\n", c.ClientID, textString(c.ClientName), textList(c.TokenEndpointAuthMethodsAccepted),
						textList(c.GrantTypes), textList(strings.Fields(c.Scope)), textList(c.Audience), c.IntrospectionAllowed, c.DPoPBoundAccessTokens, c.MFARequired)
				}
				tw.Flush()
			})
		}),
	}
	list.Flags().StringVar(&listFilter.IDPrefix, "prefix", "", "only client IDs that start with this (exact case)")
	list.Flags().StringVar(&listFilter.NamePrefix, "name-prefix", "", "only client names that start with this (any case)")
	list.Flags().StringVar(&listFilter.GrantType, "grant-type", "", "only clients registered for this grant type")
	list.Flags().StringVar(&listFilter.Scope, "scope", "", "only clients registered for this scope")
	get := &cobra.Command{
		Use: "get ID", Short: "Show a client", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			c, err := a.clients().Get(ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(adminapi.NewClientJSON(c, ""), func(w io.Writer) { printClient(w, adminapi.NewClientJSON(c, "")) })
		}),
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a client and revoke its tokens", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			if err := a.clients().Delete(ctx, args[0]); err != nil {
				return err
			}
			return a.print(map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintln(w, "deleted client", args[0]) })
		}),
	}
	rotate := &cobra.Command{
		Use: "rotate-secret ID", Short: "Replace a confidential client's secret (printed once)", Args: cobra.ExactArgs(1),
		RunE: withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
			c, secret, err := a.clients().RotateSecret(ctx, args[0])
			if err != nil {
				return err
			}
			return a.print(adminapi.NewClientJSON(c, secret), func(w io.Writer) { printClient(w, adminapi.NewClientJSON(c, secret)) })
		}),
	}
	cmd.AddCommand(create, list, get, clientsUpdateCmd(g, stdout, stderr), del, rotate)
	return cmd
}

// grantTypeUsage documents --grant-type.
const grantTypeUsage = "allowed grant type (repeatable): password, client_credentials, refresh_token, authorization_code " +
	"(the first-party authorization challenge flow, RFC draft-ietf-oauth-first-party-apps)"

// mfaRequiredUsage documents --mfa-required.
const mfaRequiredUsage = "require a second factor (TOTP or a recovery code) of every user who logs in through the client (mfa_required)"

const introspectUsage = "allow the client to call the introspection endpoint (RFC 7662) about any token; confidential clients only"

// dpopBoundUsage documents --dpop-bound-access-tokens.
const dpopBoundUsage = "require a DPoP proof (RFC 9449) with every token request of the client, so that its access tokens are bound to its key " +
	"(dpop_bound_access_tokens, RFC 9449 §5.2)"

// corsOriginUsage documents --cors-origin.
const corsOriginUsage = "browser origin scheme://host[:port] allowed to call the token and revocation endpoints as this client " +
	"(repeatable; allowed_cors_origins, Keycloak's web origins)"

// accessTokenAlgUsage documents --access-token-signed-response-alg.
const accessTokenAlgUsage = "JWS algorithm of its access tokens: ES256 or RS256 (RFC 9068 §2.1, for resource servers that only speak RS256); default: the server's keys.algorithm"

// clientsUpdateCmd changes the settings given as flags and keeps the
// others, in one transaction (clients.Service.Patch).
func clientsUpdateCmd(g *globals, stdout, stderr io.Writer) *cobra.Command {
	var set clients.Spec
	cmd := &cobra.Command{
		Use: "update ID [--name N] [--auth-method M] [--grant-type G]... [--scope S]... [--audience A]... [--introspect[=false]] [--cors-origin O]... [--dpop-bound-access-tokens[=false]] [--mfa-required[=false]]",
		Short: "Change a client's settings; settings not given are kept, a repeatable flag replaces the whole list " +
			"(--scope=, --audience= and --cors-origin= clear it)",
		Args: cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	f.StringVar(&set.Name, "name", "", "client name")
	f.StringVar(&set.AuthMethod, "auth-method", "", "token_endpoint_auth_method: client_secret_basic or client_secret_post (only that method is accepted); "+
		"--auth-method= accepts both again (a client cannot change between public and confidential)")
	f.StringSliceVar(&set.GrantTypes, "grant-type", nil, grantTypeUsage)
	f.StringSliceVar(&set.Scopes, "scope", nil, "allowed scope (repeatable)")
	f.StringSliceVar(&set.Audience, "audience", nil, "audience of its access tokens (repeatable)")
	f.BoolVar(&set.IntrospectionAllowed, "introspect", false, introspectUsage+" (--introspect=false withdraws it)")
	f.StringVar(&set.AccessTokenSigningAlg, "access-token-signed-response-alg", "", accessTokenAlgUsage+" (= restores the default)")
	f.StringSliceVar(&set.CORSOrigins, "cors-origin", nil, corsOriginUsage)
	f.BoolVar(&set.DPoPBoundAccessTokens, "dpop-bound-access-tokens", false, dpopBoundUsage+" (--dpop-bound-access-tokens=false stops requiring it)")
	f.BoolVar(&set.MFARequired, "mfa-required", false, mfaRequiredUsage+" (--mfa-required=false stops requiring it)")
	flags := []string{"name", "auth-method", "grant-type", "scope", "audience", "introspect", "access-token-signed-response-alg", "cors-origin", "dpop-bound-access-tokens", "mfa-required"}
	run := withApp(g, stdout, stderr, func(ctx context.Context, a *app, args []string) error {
		c, err := a.clients().Patch(ctx, args[0], func(s *clients.Spec) {
			changed := f.Changed
			if changed("name") {
				s.Name = set.Name
			}
			if changed("auth-method") {
				s.AuthMethod = set.AuthMethod
			}
			if changed("grant-type") {
				s.GrantTypes = set.GrantTypes
			}
			if changed("scope") {
				s.Scopes = set.Scopes
			}
			if changed("audience") {
				s.Audience = set.Audience
			}
			if changed("introspect") {
				s.IntrospectionAllowed = set.IntrospectionAllowed
			}
			if changed("access-token-signed-response-alg") {
				s.AccessTokenSigningAlg = set.AccessTokenSigningAlg
			}
			if changed("cors-origin") {
				s.CORSOrigins = set.CORSOrigins
			}
			if changed("dpop-bound-access-tokens") {
				s.DPoPBoundAccessTokens = set.DPoPBoundAccessTokens
			}
			if changed("mfa-required") {
				s.MFARequired = set.MFARequired
			}
		})
		if err != nil {
			return err
		}
		return a.print(adminapi.NewClientJSON(c, ""), func(w io.Writer) { printClient(w, adminapi.NewClientJSON(c, "")) })
	})
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !slices.ContainsFunc(flags, f.Changed) {
			return errors.New("nothing to change: give at least one of --name, --auth-method, --grant-type, --scope, --audience, --introspect, --access-token-signed-response-alg, --cors-origin, --dpop-bound-access-tokens, --mfa-required")
		}
		return run(cmd, args)
	}
	return cmd
}

// printClient writes c as "member:\tvalue" lines, aligned, with the JSON
// member names and the values as in clients list (textList, textTime).
func printClient(w io.Writer, c adminapi.ClientJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", c.ClientID)
	fmt.Fprintf(tw, "client_name:\t%s\n", textString(c.ClientName))
	if c.ClientSecret != "" {
		fmt.Fprintf(tw, "client_secret:\t%s\n", c.ClientSecret)
	}
	fmt.Fprintf(tw, "token_endpoint_auth_method:\t%s\n", c.TokenEndpointAuthMethod)
	fmt.Fprintf(tw, "token_endpoint_auth_methods_accepted:\t%s\n", textList(c.TokenEndpointAuthMethodsAccepted))
	fmt.Fprintf(tw, "grant_types:\t%s\n", textList(c.GrantTypes))
	fmt.Fprintf(tw, "scope:\t%s\n", textList(strings.Fields(c.Scope)))
	fmt.Fprintf(tw, "audience:\t%s\n", textList(c.Audience))
	fmt.Fprintf(tw, "introspection_allowed:\t%t\n", c.IntrospectionAllowed)
	if c.AccessTokenSignedResponseAlg != "" {
		fmt.Fprintf(tw, "access_token_signed_response_alg:\t%s\n", c.AccessTokenSignedResponseAlg)
	}
	fmt.Fprintf(tw, "allowed_cors_origins:\t%s\n", textList(c.AllowedCORSOrigins))
	fmt.Fprintf(tw, "dpop_bound_access_tokens:\t%t\n", c.DPoPBoundAccessTokens)
	fmt.Fprintf(tw, "mfa_required:\t%t\n", c.MFARequired)
	fmt.Fprintf(tw, "created_at:\t%s\n", textTime(&c.CreatedAt))
	fmt.Fprintf(tw, "updated_at:\t%s\n", textTime(&c.UpdatedAt))
	tw.Flush()
}
