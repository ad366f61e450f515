// Package demo seeds a vault with the story's people and a synthetic history:
// patient Ada with CGM, heart-rate, step and blood-pressure readings ending
// now, and clinician Dr. Rivera with an age identity. It writes
// DIR/demo/credentials.json, the one file allowed to hold secrets, and only
// in demo mode. Seeding is idempotent: a restart reuses the people and
// tokens, and only adds readings since the last run.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// Credentials is DIR/demo/credentials.json.
type Credentials struct {
	Note           string `json:"note"`
	BaseURL        string `json:"base_url"`
	PatientID      string `json:"patient_id"`
	PatientName    string `json:"patient_name"`
	ClinicianID    string `json:"clinician_id"`
	ClinicianName  string `json:"clinician_name"`
	DeviceToken    string `json:"device_token"`
	PatientToken   string `json:"patient_token"`
	ClinicianToken string `json:"clinician_token"`
	// JHEURL and JHEToken are JHE_URL and JHE_TOKEN for the stock
	// jupyterhealth-client (docs/jhe-compat.md): BASE/jhe and Dr. Rivera's
	// clinician token, which lasts, where an OAuth access token lasts an
	// hour and needs her passkey.
	JHEURL             string `json:"jhe_url,omitempty"`
	JHEToken           string `json:"jhe_token,omitempty"`
	ClinicianIdentity  string `json:"clinician_identity"`
	ClinicianRecipient string `json:"clinician_recipient"`
	GrantID            string `json:"grant_id,omitempty"`
	// LedgerVerifierKey is the key a hub pins (VAULT_LOG_KEY). A real hub
	// gets it from the admin out of band (vault admin ledger-key); the demo
	// writes it here for convenience.
	LedgerVerifierKey string `json:"ledger_verifier_key,omitempty"`
	// PatientInvite and ClinicianInvite are one-time links to enrol a
	// passkey in the web UI, made afresh at each demo start (72 hours).
	PatientInvite   string `json:"patient_invite,omitempty"`
	ClinicianInvite string `json:"clinician_invite,omitempty"`
	// OIDCClients are the OAuth clients serve --demo registers, by the
	// name of what uses them: "jupyterhub", a confidential client for a
	// JupyterHub on http://localhost:8000 (docs/jupyterhub.md).
	OIDCClients map[string]OIDCClient `json:"oidc_clients,omitempty"`
}

// OIDCClient is a registered OAuth client as its user configures it: a
// JupyterHub's GenericOAuthenticator takes these values (and the issuer's
// discovery document for the endpoints).
type OIDCClient struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RedirectURI  string `json:"redirect_uri"`
}

// JupyterHubClient is the key of the demo JupyterHub's client in
// Credentials.OIDCClients, and where that hub takes its sign-ins back.
const (
	JupyterHubClient      = "jupyterhub"
	JupyterHubName        = "JupyterHub (demo)"
	JupyterHubRedirectURI = "http://localhost:8000/hub/oauth_callback"
)

// ReadCredentials reads DIR/demo/credentials.json.
func ReadCredentials(data string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(filepath.Join(data, "demo", "credentials.json"))
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	return c, err
}

// WriteCredentials replaces DIR/demo/credentials.json.
func WriteCredentials(data string, c Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(data, "demo", "credentials.json"), append(b, '\n'))
}

// Options for Seed.
type Options struct {
	Dir     string // the data directory
	Days    int    // days of history
	BaseURL string
	Log     *slog.Logger
	Now     time.Time       // zero means time.Now
	Ledger  *consent.Ledger // when set, Ada's grant to Dr. Rivera is kept active
}

// Result says what Seed did.
type Result struct {
	CredentialsPath string
	Credentials     Credentials
	Added           int
}

const seededMeta = "demo_seeded_until"

// Seed makes sure the demo people, tokens, identity and readings exist.
func Seed(ctx context.Context, v *vault.Vault, o Options) (Result, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	dir := filepath.Join(o.Dir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, err
	}
	path := filepath.Join(dir, "credentials.json")
	var c Credentials
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &c); err != nil {
			return Result{}, fmt.Errorf("%s is corrupt; delete it to re-create the demo people: %v", path, err)
		}
	}
	c.Note = "DEMO ONLY: this file holds live secrets for the demo vault. Never use --demo with real data."
	c.BaseURL = o.BaseURL

	ensureUser := func(id *string, n vault.NewUser) error {
		if *id != "" {
			if _, err := v.User(ctx, *id); err == nil {
				return nil
			}
		}
		u, err := v.CreateUser(ctx, n)
		if err != nil {
			return err
		}
		*id = u.ID
		return record(o.Ledger, "user-add", u.ID, u.Role+" (demo)", o.Now)
	}
	c.PatientName, c.ClinicianName = "Ada Moreno", "Dr. Sofia Rivera"
	if err := ensureUser(&c.PatientID, vault.NewUser{Role: vault.RolePatient, Name: c.PatientName, TimeZone: "America/New_York"}); err != nil {
		return Result{}, err
	}
	if err := ensureUser(&c.ClinicianID, vault.NewUser{Role: vault.RoleClinician, Name: c.ClinicianName, Organization: "Riverside Endocrine Clinic", TimeZone: "America/New_York"}); err != nil {
		return Result{}, err
	}
	ensureToken := func(tok *string, user, kind string) error {
		if *tok != "" {
			if t, err := v.Authenticate(ctx, *tok); err == nil && t.UserID == user && o.Now.Add(7*24*time.Hour).Before(t.Expires) {
				return nil
			}
		}
		s, t, err := v.MintToken(ctx, user, kind, 0)
		if err != nil {
			return err
		}
		*tok = s
		return record(o.Ledger, "token-mint", user, kind+" "+t.ID+" (demo)", o.Now)
	}
	if err := ensureToken(&c.DeviceToken, c.PatientID, vault.TokenDevice); err != nil {
		return Result{}, err
	}
	if err := ensureToken(&c.PatientToken, c.PatientID, vault.TokenPatient); err != nil {
		return Result{}, err
	}
	if err := ensureToken(&c.ClinicianToken, c.ClinicianID, vault.TokenClinician); err != nil {
		return Result{}, err
	}
	c.JHEURL, c.JHEToken = strings.TrimSuffix(o.BaseURL, "/")+"/jhe", c.ClinicianToken
	idPath := filepath.Join(dir, "rivera.agekey")
	recip, err := ensureIdentity(idPath, o.Now)
	if err != nil {
		return Result{}, err
	}
	c.ClinicianIdentity, c.ClinicianRecipient = idPath, recip
	if o.Ledger != nil {
		c.LedgerVerifierKey = o.Ledger.VerifierKey()
		if err := ensureKey(o.Ledger, c.ClinicianID, recip, o.Now); err != nil {
			return Result{}, err
		}
		if c.GrantID, err = ensureGrant(o.Ledger, c.PatientID, c.ClinicianID, o.Now); err != nil {
			return Result{}, err
		}
	}

	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return Result{}, err
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return Result{}, err
	}
	added, err := seedReadings(ctx, v, c.PatientID, o)
	if err != nil {
		return Result{}, err
	}
	return Result{CredentialsPath: path, Credentials: c, Added: added}, nil
}

// record logs a demo admin action in the ledger, as the admin commands do.
func record(l *consent.Ledger, action, target, detail string, now time.Time) error {
	if l == nil {
		return nil
	}
	_, err := l.Append(consent.NewAdmin(action, target, detail, now))
	return err
}

// ensureKey registers Dr. Rivera's demo hub key, active at once.
func ensureKey(l *consent.Ledger, clinician, recipient string, now time.Time) error {
	fp := consent.Fingerprint(recipient)
	for _, k := range l.ClinicianKeys(clinician) {
		if k.Fingerprint == fp && k.RemoveIndex == nil {
			return nil
		}
	}
	e := consent.New(consent.KindClinicianKeyAdd, clinician, now)
	e.Clinician = clinician
	e.Key = &consent.ClinicianKey{Fingerprint: fp, Recipient: recipient, Label: "demo hub"}
	_, err := l.Append(e)
	return err
}

// ensureGrant keeps an active grant from Ada to Dr. Rivera: blood glucose,
// heart rate and steps from 90 days ago on, expiring in a year, readable
// through the FHIR API too.
func ensureGrant(l *consent.Ledger, patient, clinician string, now time.Time) (string, error) {
	gs, err := l.Grants(patient, clinician)
	if err != nil {
		return "", err
	}
	for _, g := range gs {
		if g.Active(now) {
			return g.ID, nil
		}
	}
	e := consent.New(consent.KindGrant, patient, now)
	e.Patient, e.Clinician = patient, clinician
	e.Grant = &consent.Grant{
		ID:       "gr_demo" + strings.ToLower(strconv.FormatInt(now.Unix(), 36)),
		Schemas:  []string{"omh:blood-glucose", "omh:heart-rate", "omh:step-count"},
		DataFrom: now.Add(-90 * 24 * time.Hour).UTC().Truncate(time.Hour).Format(time.RFC3339Nano),
		Expires:  now.Add(365 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339Nano),
		Purpose:  "TREAT",
		// The demo's clinician may also read through the FHIR API.
		FHIR: true,
	}
	if _, err := l.Append(e); err != nil {
		return "", fmt.Errorf("demo grant: %v", err)
	}
	return e.Grant.ID, nil
}

func ensureIdentity(path string, now time.Time) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		ids, err := age.ParseIdentities(bytesReader(b))
		if err != nil || len(ids) != 1 {
			return "", fmt.Errorf("%s is not an age identity file", path)
		}
		x, ok := ids[0].(*age.X25519Identity)
		if !ok {
			return "", fmt.Errorf("%s is not an X25519 identity", path)
		}
		return x.Recipient().String(), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	content := fmt.Sprintf("# created: %s\n# public key: %s\n# demo identity of Dr. Rivera's JupyterHub\n%s\n", now.UTC().Format(time.RFC3339), id.Recipient(), id)
	return id.Recipient().String(), writeFileAtomic(path, []byte(content))
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// demoUUID names a synthetic point by its kind and time only (never by its
// value), so a re-seed of the same moment is a duplicate.
func demoUUID(kind string, t time.Time) string {
	h := sha256.Sum256(fmt.Appendf(nil, "jhvault-demo|%s|%d", kind, t.Unix()))
	h[6] = (h[6] & 0x0f) | 0x80
	h[8] = (h[8] & 0x3f) | 0x80
	s := hex.EncodeToString(h[:16])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

func seedReadings(ctx context.Context, v *vault.Vault, patient string, o Options) (int, error) {
	end := o.Now.Truncate(5 * time.Minute)
	start := end.Add(-time.Duration(o.Days) * 24 * time.Hour)
	if b, _ := v.Backend().Meta(ctx, seededMeta+"|"+patient); b != nil {
		if t, err := time.Parse(time.RFC3339, string(b)); err == nil && t.After(start) {
			start = t
		}
	}
	u, err := v.User(ctx, patient)
	if err != nil {
		return 0, err
	}
	g := newGenerator(u.Location())
	added := 0
	const batch = 5000
	var pts []*omh.Point
	flush := func() error {
		if len(pts) == 0 {
			return nil
		}
		res, err := v.Ingest(ctx, patient, pts)
		added += res.Accepted
		pts = pts[:0]
		return err
	}
	for raw := range g.points(start, end) {
		p, err := omh.Parse(raw)
		if err != nil {
			return added, fmt.Errorf("generated point does not parse: %v", err)
		}
		pts = append(pts, p)
		if len(pts) == batch {
			if err := flush(); err != nil {
				return added, err
			}
		}
	}
	if err := flush(); err != nil {
		return added, err
	}
	return added, v.Backend().PutMeta(ctx, seededMeta+"|"+patient, []byte(end.UTC().Format(time.RFC3339)))
}
