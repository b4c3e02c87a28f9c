package challenge

import (
	"context"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/portcullis-auth/portcullis/identity"
	"github.com/portcullis-auth/portcullis/oauth"
	"github.com/portcullis-auth/portcullis/oauth/clients"
)

// CheckLogin implements oauth.FirstParty: a login (a password grant, amr
// [pwd]) or a refresh of a grant that proved no second factor is refused
// when the user must prove one (needsSecondFactor). The client gets an
// auth_session to finish at this endpoint when it is registered for the
// authorization_code grant: after a password grant (fresh), a login
// session whose password is proven (only the code is left); after a
// refresh, a step-up session (a fresh factor).
func (h *Handler) CheckLogin(ctx context.Context, client fosite.Client, user *identity.User, amr []string, fresh bool, jkt string) error {
	if slices.Contains(amr, oauth.AMROTP) {
		return nil
	}
	factor, err := h.Users.ConfirmedFactor(ctx, user.ID)
	if err != nil {
		return err
	}
	if !h.needsSecondFactor(client, user, factor != nil, nil) {
		return nil
	}
	refusal := &oauth.InsufficientAuthorization{OTPRequired: factor != nil, EnrollmentRequired: factor == nil}
	if !client.GetGrantTypes().Has(clients.GrantAuthorizationCode) {
		return refusal
	}
	st := &state{Kind: kindLogin, Done: []string{oauth.AMRPassword}}
	if !fresh {
		// A refresh: nothing was proven just now, so the session asks
		// for a fresh factor (the password first for a user without
		// one), like a step-up: whoever holds the refresh token alone
		// cannot enrol a factor.
		st = &state{Kind: kindStepUp, PriorAMR: amr}
	}
	value, err := h.store(ctx, client, nil, st, user, jkt, "", h.SessionLifetime)
	if err != nil {
		return err
	}
	refusal.AuthSession = value
	return refusal
}

// StepUpSession implements oauth.FirstParty: the auth_session of a login
// just finished here (a code redeemed), with which the client can come
// back for a step-up (RFC 9470 via draft §7), which always asks for a
// fresh factor.
func (h *Handler) StepUpSession(ctx context.Context, client fosite.Client, user *identity.User, amr []string, authTime time.Time, jkt, grantID string) (string, error) {
	st := &state{Kind: kindStepUp, PriorAMR: amr, PriorAuthTime: authTime.Unix()}
	return h.store(ctx, client, nil, st, user, jkt, grantID, h.StepUpLifetime)
}
