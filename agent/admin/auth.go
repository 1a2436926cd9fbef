package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/user"
	"strconv"
	"strings"

	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/policy/approval"
)

// PeerCred authenticates callers on the admin socket by the credentials
// the kernel gives for the connection (SO_PEERCRED): the caller's uid,
// its user name and unix groups. Serve connections with its ConnContext.
type PeerCred struct{}

type peerKey struct{}

// Peer is what the kernel says of the process at the other end.
type Peer struct {
	PID      int32
	UID, GID uint32
}

// Authenticate names the caller by its uid.
func (PeerCred) Authenticate(r *http.Request) (approval.Approver, error) {
	p, ok := r.Context().Value(peerKey{}).(Peer)
	if !ok {
		return approval.Approver{}, errors.New("the caller's credentials are unknown")
	}
	return LocalApprover(p.UID, p.GID), nil
}

// LocalApprover is the approver a local uid is: its user name (uid:N when
// it has none) and the names of its groups.
func LocalApprover(uid, gid uint32) approval.Approver {
	a := approval.Approver{Name: "uid:" + strconv.FormatUint(uint64(uid), 10), Via: approval.ViaUnix, UID: &uid}
	gids := []string{strconv.FormatUint(uint64(gid), 10)}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		a.Name = u.Username
		if more, err := u.GroupIds(); err == nil {
			gids = append(gids, more...)
		}
	}
	for _, id := range gids {
		g, err := user.LookupGroupId(id)
		if err != nil {
			continue
		}
		if !contains(a.Groups, g.Name) {
			a.Groups = append(a.Groups, g.Name)
		}
	}
	return a
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// temporary reports whether err refuses a call only for now: what vouches
// for the caller could not be asked (an OIDC issuer that does not answer),
// which says nothing of the caller. The call is refused all the same; a web
// session stays open for the next one.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// TokenVerifier verifies an OIDC ID token (agent/oidc.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*policy.OIDC, error)
}

// Bearer authenticates callers by the OIDC ID token they present as
// "Authorization: Bearer TOKEN", verified against the configured issuers:
// signature, expiry, issuer, audience. The token's groups are the
// approver's groups; its email (when verified) or subject its name.
type Bearer struct {
	Tokens TokenVerifier
}

// Authenticate verifies the bearer token.
func (b *Bearer) Authenticate(r *http.Request) (approval.Approver, error) {
	h := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return approval.Approver{}, errors.New("present an OIDC ID token: Authorization: Bearer TOKEN")
	}
	return b.verify(r, strings.TrimSpace(raw))
}

// verify is the approver raw names, once verified.
func (b *Bearer) verify(r *http.Request, raw string) (approval.Approver, error) {
	id, err := b.Tokens.Verify(r.Context(), raw)
	if temporary(err) {
		return approval.Approver{}, fmt.Errorf("the token could not be checked now, try again: %w", err)
	}
	if err != nil {
		return approval.Approver{}, fmt.Errorf("the token was refused: %v", err)
	}
	a := approval.Approver{Name: id.Subject, Via: approval.ViaOIDC, Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Groups: id.Groups}
	if id.Email != "" {
		a.Name = id.Email
	}
	return a, nil
}
