package ssh

import (
	"strings"
	"testing"
)

func TestIsShell(t *testing.T) {
	for argv, want := range map[string]bool{
		"bash":                true,
		"/bin/sh -s":          true,
		"bash script.sh":      true,
		"busybox sh":          true,
		"bash -c x":           false,
		"sh -ec x":            false,
		"bash --norc -c x":    false,
		"busybox ls":          false,
		"systemctl restart x": false,
		"zsh -l":              true,
	} {
		if got := isShell(strings.Fields(argv)); got != want {
			t.Errorf("isShell(%q) = %v, want %v", argv, got, want)
		}
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln": true,
		"hunter2":                        false,
		"eyJ.only-two":                   false,
		"eyJhbGci.eyJzdWIi.c2ln with sp": false,
	} {
		if got := looksLikeJWT(s); got != want {
			t.Errorf("looksLikeJWT(%q) = %v", s, got)
		}
	}
}
