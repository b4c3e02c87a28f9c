package oauth

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// passwordGrant is the resource-owner password grant (RFC 6749 §4.3) as
// fosite runs it inside NewAccessRequest and NewAccessResponse, except for
// the password check. fosite's own handler checks the password through
// its storage, where the token handler can neither see which user, with
// which credentials, was checked, nor confirm them in the transaction that
// writes the tokens. Here the handler only validates the request; the
// TokenHandler checks the password itself once fosite has authenticated
// the client, and confirms the credentials it checked under a row lock in
// the token transaction (TokenHandler.ServeHTTP), so that a password
// change, disabling or deletion committing meanwhile is never outlived by
// the login's tokens.
type passwordGrant struct {
	*oauth2.HandleHelper
	refresh oauth2.RefreshTokenStrategy
	store   oauth2.RefreshTokenStorage
	config  interface {
		fosite.ScopeStrategyProvider
		fosite.AudienceStrategyProvider
		fosite.RefreshTokenScopesProvider
		fosite.RefreshTokenLifespanProvider
		fosite.AccessTokenLifespanProvider
	}
}

var _ fosite.TokenEndpointHandler = (*passwordGrant)(nil)

// passwordGrantFactory builds the handler for compose.Compose.
func passwordGrantFactory(config fosite.Configurator, storage, strategy any) any {
	return &passwordGrant{
		HandleHelper: &oauth2.HandleHelper{
			AccessTokenStrategy: strategy.(oauth2.AccessTokenStrategy),
			AccessTokenStorage:  storage.(oauth2.AccessTokenStorage),
			Config:              config,
		},
		refresh: strategy.(oauth2.RefreshTokenStrategy),
		store:   storage.(oauth2.RefreshTokenStorage),
		config:  config,
	}
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler: never.
func (g *passwordGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (g *passwordGrant) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(clients.GrantPassword)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler: the
// checks of RFC 6749 §4.3.2 other than the password (the client may use
// the grant and the scopes and audiences it asks for; username and
// password are present), and the tokens' lifetimes. It removes the
// password from the request's form so that it is never stored.
func (g *passwordGrant) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !g.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	client := ar.GetClient()
	if !client.GetGrantTypes().Has(clients.GrantPassword) {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use authorization grant 'password'.")
	}
	for _, scope := range ar.GetRequestedScopes() {
		if !g.config.GetScopeStrategy(ctx)(client.GetScopes(), scope) {
			return fosite.ErrInvalidScope.WithHintf("The OAuth 2.0 Client is not allowed to request scope '%s'.", scope)
		}
	}
	if err := g.config.GetAudienceStrategy(ctx)(client.GetAudience(), ar.GetRequestedAudience()); err != nil {
		return err
	}
	form := ar.GetRequestForm()
	if form.Get("username") == "" || form.Get("password") == "" {
		return fosite.ErrInvalidRequest.WithHint("Username or password are missing from the POST body.")
	}
	delete(form, "password")
	now := time.Now().UTC()
	at := fosite.GetEffectiveLifespan(client, fosite.GrantTypePassword, fosite.AccessToken, g.config.GetAccessTokenLifespan(ctx))
	ar.GetSession().SetExpiresAt(fosite.AccessToken, now.Add(at).Round(time.Second))
	if rt := fosite.GetEffectiveLifespan(client, fosite.GrantTypePassword, fosite.RefreshToken, g.config.GetRefreshTokenLifespan(ctx)); rt > -1 {
		ar.GetSession().SetExpiresAt(fosite.RefreshToken, now.Add(rt).Round(time.Second))
	}
	return nil
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler
// (RFC 6749 §4.3.3): the access token and, unless refresh tokens need a
// scope the grant lacks, a refresh token, written with ctx's transaction.
func (g *passwordGrant) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	at := fosite.GetEffectiveLifespan(ar.GetClient(), fosite.GrantTypePassword, fosite.AccessToken, g.config.GetAccessTokenLifespan(ctx))
	atSignature, err := g.IssueAccessToken(ctx, at, ar, resp)
	if err != nil {
		return err
	}
	scopes := g.config.GetRefreshTokenScopes(ctx)
	if len(scopes) > 0 && !ar.GetGrantedScopes().HasOneOf(scopes...) {
		return nil
	}
	token, signature, err := g.refresh.GenerateRefreshToken(ctx, ar)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if err := g.store.CreateRefreshTokenSession(ctx, signature, atSignature, ar.Sanitize([]string{})); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetExtra("refresh_token", token)
	return nil
}
