package export

import (
	"strings"

	"filippo.io/age"
)

// ParseRecipient accepts an age X25519 (age1…) or hybrid post-quantum
// (age1pq1…) recipient, parsed by filippo.io/age, and returns it with its
// canonical string (what consent.Fingerprint names). The API's
// POST /api/v1/clinician/keys and the web UI's key page both register
// keys through it, and exports encrypt to what it returns.
func ParseRecipient(s string) (age.Recipient, string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "age1pq1") {
		r, err := age.ParseHybridRecipient(s)
		if err != nil {
			return nil, "", err
		}
		return r, r.String(), nil
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, "", err
	}
	return r, r.String(), nil
}
