package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/agent/oidc"
)

// newTokens returns the verifier of the tokens workloads present. Issuers
// are reached with dial, corral's own dialer, whose sockets the kernel
// never redirects: an issuer may well be a protected target itself.
func newTokens(c config.OIDC, dial func(ctx context.Context, network, addr string) (net.Conn, error), log *slog.Logger) *oidc.Verifier {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dial
	v := oidc.New(&http.Client{Transport: tr, Timeout: 15 * time.Second}, log)
	v.SetIssuers(issuers(c))
	return v
}

func issuers(c config.OIDC) []oidc.Issuer {
	out := make([]oidc.Issuer, 0, len(c.Issuers))
	for _, i := range c.Issuers {
		out = append(out, oidc.Issuer{URL: i.URL, Audiences: i.Audiences, GroupsClaim: i.GroupsClaim, Approvers: i.Approvers})
	}
	return out
}
