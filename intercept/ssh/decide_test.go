package ssh

import (
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

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

// sshd reads request fields as C strings: "sftp\x00" names sftp to it. A
// field holding a NUL is refused before anything is decided on it.
func TestQuestionRefusesNUL(t *testing.T) {
	s := &session{t: Target{}}
	for _, r := range []*gossh.Request{
		{Type: "subsystem", Payload: gossh.Marshal(struct{ Name string }{"sftp\x00"})},
		{Type: "exec", Payload: gossh.Marshal(struct{ Command string }{"true\x00; reboot"})},
	} {
		if q, err := s.question(r, false); err == nil || len(q.ops) != 0 {
			t.Errorf("%s %q: %+v, %v; want it refused", r.Type, r.Payload, q, err)
		}
	}
	if q, err := s.question(&gossh.Request{Type: "subsystem", Payload: gossh.Marshal(struct{ Name string }{"sftp"})}, false); err != nil || q.ops[0] != "sftp" {
		t.Errorf("sftp: %+v, %v", q, err)
	}
}
