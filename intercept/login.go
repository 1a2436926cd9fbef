package intercept

// ClientAuth is how a target's workloads log in to corral, for the
// handlers whose protocol has a login (targets[].client_auth). Whatever
// the mode, the kernel's facts stay part of the identity; a token adds to
// them.
type ClientAuth string

const (
	// ClientAuthKernel: the workload is who the kernel says it is; it is
	// never asked for a password.
	ClientAuthKernel ClientAuth = "kernel"
	// ClientAuthToken: a password is asked for. A JWT must verify and its
	// identity joins the kernel's; anything else leaves the kernel's alone.
	ClientAuthToken ClientAuth = "token"
	// ClientAuthTokenRequired: the password must be a JWT that verifies.
	ClientAuthTokenRequired ClientAuth = "token-required"
)
