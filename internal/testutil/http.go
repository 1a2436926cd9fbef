package testutil

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// HTTPGet fetches url (the agent's health and metrics endpoints) and
// returns the status code and body; a request that fails fails the test.
func HTTPGet(t testing.TB, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
