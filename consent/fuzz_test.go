package consent

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParse checks the entry decoder: it never panics, and whatever it
// accepts marshals back to exactly the same bytes.
func FuzzParse(f *testing.F) {
	for i, e := range []Entry{grantEntry(1), func() Entry {
		e := New(KindRevoke, "pt_a", time.Unix(0, 1))
		e.Patient, e.Revoke = "pt_a", &Revoke{GrantIndex: 3, GrantID: "gr_x"}
		return e
	}(), func() Entry {
		e := grantEntry(2)
		e.Grant.Assertion = &Assertion{CredentialID: []byte{1}, PasskeyIndex: 4, Nonce: make([]byte, NonceSize),
			AuthenticatorData: []byte{2}, ClientDataJSON: []byte(`{"type":"webauthn.get"}`), Signature: []byte{3}}
		return e
	}(), func() Entry {
		e := New(KindAccessEnd, "cl_b", time.Unix(1, 0))
		start := int64(9)
		e.Access = &Access{Start: &start, Records: 12, ContentHash: []byte{1, 2, 3}}
		return e
	}()} {
		b, err := e.Marshal()
		if err != nil {
			f.Fatal(i, err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		again, err := e.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parse then marshal: %q, %v; want %q", again, err, b)
		}
	})
}

// FuzzParseCheckpoint checks the checkpoint parser the same way.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add(Checkpoint{Origin: "vault.example", Size: 3, Hash: tlog.RecordHash([]byte("x"))}.Marshal())
	f.Add(Checkpoint{Origin: "localhost:8080", Size: 0}.Marshal())
	f.Add([]byte("a\n01\nAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpoint(b)
		if err != nil {
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("parse then marshal: %q; want %q", got, b)
		}
	})
}
