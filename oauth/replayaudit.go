package oauth

import (
	"context"
	"errors"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/portcullis-auth/portcullis/audit"
)

// replayNote is what a token request that may replay a refresh token or an
// authorization code tells the storage calls fosite makes for it: who
// presents it (the authenticated client) and which audit action a replay
// is. grantStore fills in whose grant was replayed when it finds the
// token used, and records the event when fosite then revokes the grant.
type replayNote struct {
	actor  string // the presenting client, "client:ID"
	action string // audit.TokenRefreshReuse or audit.TokenCodeReplay
	target string // set once a replay was found: "user:ID" (else "client:ID")
}

type replayNoteCtx struct{}

func withReplayNote(ctx context.Context, req fosite.AccessRequester, action string) context.Context {
	n := &replayNote{action: action}
	if c := req.GetClient(); c != nil {
		n.actor = audit.ClientTarget(c.GetID())
	}
	return context.WithValue(ctx, replayNoteCtx{}, n)
}

// noteReplay marks the request ctx carries as the replay of req's grant.
func noteReplay(ctx context.Context, req fosite.Requester) {
	n, ok := ctx.Value(replayNoteCtx{}).(*replayNote)
	if !ok || req == nil {
		return
	}
	n.target = grantTarget(req)
}

// grantTarget names whose grant req is: its user's, else its client's.
func grantTarget(req fosite.Requester) string {
	if id, ok := UserID(req); ok {
		return audit.UserTarget(id)
	}
	if c := req.GetClient(); c != nil {
		return audit.ClientTarget(c.GetID())
	}
	return ""
}

// replayNoted reports whether ctx's token request was found to replay a
// grant's token (noteReplay) and its event is still to be recorded.
func replayNoted(ctx context.Context) bool {
	n, ok := ctx.Value(replayNoteCtx{}).(*replayNote)
	return ok && n.target != ""
}

// recordReplay writes the audit event of the replay noted in ctx, if any,
// with r in the transaction ctx carries, the revocation's
// (grantStore.RevokeRefreshToken), so the event commits with it.
func recordReplay(ctx context.Context, r audit.Recorder) error {
	n, ok := ctx.Value(replayNoteCtx{}).(*replayNote)
	if !ok || n.target == "" {
		return nil
	}
	ev := audit.Event{Actor: n.actor, Action: n.action, Target: n.target, Outcome: audit.OutcomeFailure}
	n.target = "" // one event per replay
	return audit.Record(ctx, r, ev)
}

// refreshReuseHandler is fosite's refresh-token handler whose token
// requests carry a replayNote: fosite revokes the grant of a used refresh
// token presented again (reuse detection, RFC 9700 §4.14.2), and the
// revocation is recorded as audit.TokenRefreshReuse.
type refreshReuseHandler struct {
	*oauth2.RefreshTokenGrantHandler
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h refreshReuseHandler) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	return h.RefreshTokenGrantHandler.HandleTokenEndpointRequest(withReplayNote(ctx, req, audit.TokenRefreshReuse), req)
}

// codeReplayHandler is fosite's authorization-code handler whose token
// requests carry a replayNote: fosite revokes what the first redemption
// of a code redeemed again issued (RFC 6749 §4.1.2), and the revocation is
// recorded as audit.TokenCodeReplay.
type codeReplayHandler struct {
	*oauth2.AuthorizeExplicitGrantHandler
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h codeReplayHandler) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	return h.AuthorizeExplicitGrantHandler.HandleTokenEndpointRequest(withReplayNote(ctx, req, audit.TokenCodeReplay), req)
}

// auditReplays replaces fosite's refresh-token and authorization-code
// handlers in hs with refreshReuseHandler and codeReplayHandler; it fails
// when hs lacks either.
func auditReplays(hs fosite.TokenEndpointHandlers) error {
	found := 0
	for i, h := range hs {
		switch h := h.(type) {
		case *oauth2.RefreshTokenGrantHandler:
			hs[i] = refreshReuseHandler{h}
			found++
		case *oauth2.AuthorizeExplicitGrantHandler:
			hs[i] = codeReplayHandler{h}
			found++
		}
	}
	if found != 2 {
		return errors.New("oauth: fosite's refresh-token or authorization-code handler is missing")
	}
	return nil
}
