package workload

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The container fields are additions to the identity's JSON contract:
// present when known, absent otherwise.
func TestPodContainerJSON(t *testing.T) {
	b, err := json.Marshal(Pod{UID: "u", Container: "main", Image: "registry.example/app:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"container":"main"`, `"image":"registry.example/app:1"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("%s missing from %s", k, b)
		}
	}
	b, _ = json.Marshal(Pod{UID: "u"})
	if bytes.Contains(b, []byte(`"container"`)) || bytes.Contains(b, []byte(`"image"`)) {
		t.Errorf("unknown container shown: %s", b)
	}
}
