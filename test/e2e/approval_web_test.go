//go:build linux

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/corral-dev/corral/internal/testutil"
)

// spki is the base64 SHA-256 of a certificate's public key, as
// Chromium's --ignore-certificate-errors-spki-list takes it.
func spki(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// listenerKeys verifies the HTTPS listener's certificate against corral's
// CA (ca.pem) and returns the public keys Chromium is told to trust: the
// CA's and the listener's, which the CA signed.
func listenerKeys(t *testing.T, caFile, addr string) []string {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no certificate", caFile)
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	host, _, _ := net.SplitHostPort(addr)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: host})
	if err != nil {
		t.Fatalf("the listener's certificate does not verify against corral's CA: %v", err)
	}
	defer conn.Close()
	return []string{spki(ca), spki(conn.ConnectionState().PeerCertificates[0])}
}

// An approver opens the web page in a real browser, logs in with an ID
// token, sees the waiting statement and approves it; the statement runs.
func TestApprovalWebPage(t *testing.T) {
	testutil.RequireBPF(t)
	chromium := testutil.RequireChromium(t)
	issuer := testutil.StartOIDCIssuer(t)
	listen := freeLoopbackAddr(t)
	ae := newOIDCApprovalEnv(t, issuer, listen, "timeout: 2m")

	// alice asks; bob, of group dba, decides in the browser.
	p := ae.psql(t, issuer.Token(t, nil), "DELETE FROM orders")
	id := p.waiting(t)
	bob := issuer.Token(t, map[string]any{"sub": "bob", "email": "bob@example.com"})

	// Chromium trusts corral's CA by its key (the CA and the listener's
	// certificate it signed), not every certificate.
	keys := listenerKeys(t, filepath.Join(ae.stateDir, "ca.pem"), listen)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(keys, ",")),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	base := "https://" + listen
	req := "#req-" + id
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	// The page replaces the request list whenever an approval event
	// arrives, so a node found in one call may be gone by the next: the
	// text is looked up and read in one step, inside the page.
	text := func(sel string) string {
		t.Helper()
		return eval(fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : ""; })()`, strconv.Quote(sel)))
	}
	// For the same reason the approve button is clicked from inside the
	// page, on the node that is there at that moment.
	click := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(document.querySelector(%s).click(), true)`, strconv.Quote(sel)))(ctx, tg)
			return err
		})
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#token")),
		chromedp.SetValue(css("#token"), bob),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css(req+" button.approve")),
	)
	if err != nil {
		t.Fatalf("logging in and finding the request: %v", err)
	}
	who, shownID, statement := text("#who"), text(req+" .id"), text(req+" .text")
	if !strings.Contains(who, "bob@example.com") || shownID != id || !strings.Contains(statement, "DELETE FROM orders") {
		t.Fatalf("the page shows %q, request %q, statement %q", who, shownID, statement)
	}
	cookies := eval(`document.cookie`)
	stored := eval(`JSON.stringify(window.localStorage) + JSON.stringify(window.sessionStorage)`)
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if cookies != "" || stored != "{}{}" || strings.Contains(url, bob) {
		t.Fatalf("the session is within the page's reach: cookies %q, storage %q, url %q", cookies, stored, url)
	}
	if n := ae.orders(t); n != "2" {
		t.Fatal("the statement ran before it was approved")
	}

	from := ae.a.Mark()
	err = chromedp.Do(ctx,
		click(req+" button.approve"),
		chromedp.WaitNotPresent(css(req)),
		chromedp.WaitVisible(css("#none")),
	)
	if err != nil {
		t.Fatalf("approving: %v", err)
	}
	if status := text("#status"); status != "approved "+id {
		t.Errorf("the page says %q", status)
	}
	out, err := p.wait(t)
	if err != nil || !strings.Contains(out, "DELETE 2") {
		t.Fatalf("psql after the approval in the browser: %v\n%s", err, out)
	}
	if n := ae.orders(t); n != "0" {
		t.Fatalf("%s orders left", n)
	}
	ev := ae.approval(t, from, id, "approved")
	if ev.Approval.DecidedBy != "bob@example.com" || ev.Approval.Via != "oidc" {
		t.Errorf("approved event %+v", ev.Approval)
	}

	// Logging out ends the session: the page asks for a token again.
	err = chromedp.Do(ctx,
		chromedp.Click(css("#logout")),
		chromedp.WaitVisible(css("#token")),
	)
	if err != nil {
		t.Fatalf("logging out: %v", err)
	}
	for _, l := range ae.a.Lines() {
		if strings.Contains(l, bob) {
			t.Fatalf("a token reached the agent's output: %s", l)
		}
	}
}
