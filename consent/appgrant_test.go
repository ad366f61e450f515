package consent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/consent/consenttest"
	"github.com/jupyterhealth/vault/consent/ledgerstore"
)

// appGrantFor is an unsigned app grant entry, as NewAppGrant makes one.
func appGrantFor(t testing.TB, patient, app string, schemas []string, from, to, expires time.Time) Entry {
	t.Helper()
	r := AppGrantRequest{App: app, Schemas: schemas, ExpiresAt: expires.Format(time.RFC3339)}
	if !from.IsZero() {
		r.DataFrom = from.Format(time.RFC3339)
	}
	if !to.IsZero() {
		r.DataTo = to.Format(time.RFC3339)
	}
	e, err := NewAppGrant(patient, r, t0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewAppGrant(t *testing.T) {
	exp := t0.Add(24 * time.Hour).Format(time.RFC3339)
	cases := []struct {
		name string
		r    AppGrantRequest
		code string
	}{
		{"good", AppGrantRequest{App: "app_1", Schemas: []string{"omh:blood-glucose", "omh:heart-rate:2.0"}, ExpiresAt: exp}, ""},
		{"no app", AppGrantRequest{Schemas: []string{"omh:blood-glucose"}, ExpiresAt: exp}, "bad_app"},
		{"app with a space", AppGrantRequest{App: "my app", Schemas: []string{"omh:blood-glucose"}, ExpiresAt: exp}, "bad_app"},
		{"app too long", AppGrantRequest{App: strings.Repeat("a", MaxAppIDLength+1), Schemas: []string{"omh:blood-glucose"}, ExpiresAt: exp}, "bad_app"},
		{"no schema", AppGrantRequest{App: "app_1", ExpiresAt: exp}, "bad_schemas"},
		{"unknown schema", AppGrantRequest{App: "app_1", Schemas: []string{"omh:nothing"}, ExpiresAt: exp}, "unknown_schema"},
		{"window backwards", AppGrantRequest{App: "app_1", Schemas: []string{"omh:blood-glucose"}, DataFrom: "2026-02-01T00:00:00Z", DataTo: "2026-01-01T00:00:00Z", ExpiresAt: exp}, "bad_window"},
		{"no expiry", AppGrantRequest{App: "app_1", Schemas: []string{"omh:blood-glucose"}}, "bad_time"},
		{"expired", AppGrantRequest{App: "app_1", Schemas: []string{"omh:blood-glucose"}, ExpiresAt: t0.Format(time.RFC3339)}, "bad_expiry"},
		{"beyond five years", AppGrantRequest{App: "app_1", Schemas: []string{"omh:blood-glucose"}, ExpiresAt: t0.Add(MaxGrantLifetime + time.Hour).Format(time.RFC3339)}, "bad_expiry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewAppGrant("pt_a", tc.r, t0)
			if tc.code != "" {
				var re *RequestError
				if !errors.As(err, &re) || re.Code != tc.code {
					t.Fatalf("err %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Kind != KindGrant || e.Patient != "pt_a" || e.App != "app_1" || e.Clinician != "" || e.Grant.Purpose != AppPurpose || !strings.HasPrefix(e.Grant.ID, "gr_") {
				t.Fatalf("entry %+v", e)
			}
			if _, err := e.Marshal(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAppEntryShape: only grant and revoke entries name an app, never
// beside a clinician; a grant names exactly one grantee.
func TestAppEntryShape(t *testing.T) {
	e := newTestEnv(t)
	good := appGrantFor(t, "pt_a", "app_1", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry)
	both := good
	both.Clinician = "cl_b"
	neither := good
	neither.App = ""
	badID := good
	badID.App = "app/1"
	key := keyEntry(KindClinicianKeyAdd, "cl_b", "fp1", "age1x", time.Time{})
	key.App = "app_1"
	for name, en := range map[string]Entry{"clinician and app": both, "no grantee": neither, "bad client id": badID, "app on a key entry": key} {
		if _, err := e.l.Append(en); err == nil {
			t.Errorf("%s: appended", name)
		}
	}
	if n := e.size(t); n != 0 {
		t.Fatalf("size %d after refused appends", n)
	}
	e.append(t, good)
	b, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"patient":"pt_a","app":"app_1","grant":{`) {
		t.Fatalf("encoding %s", b)
	}
	if p := good.Parties(); len(p) != 1 || p[0] != "pt_a" {
		t.Fatalf("parties %v", p)
	}
}

// TestAppGrantIndex: the index keeps app grants apart. AppGrants and
// AppGrantActive find them; Decide and Grants never do, whoever asks,
// even a clinician whose id is spelled like the app's.
func TestAppGrantIndex(t *testing.T) {
	e := newTestEnv(t)
	app := appGrantFor(t, "pt_a", "cl_b", []string{"omh:blood-glucose"}, day(-10), day(10), expiry)
	other := appGrantFor(t, "pt_a", "app_2", []string{"omh:heart-rate"}, time.Time{}, time.Time{}, expiry)
	e.append(t, app, other, grantFor("gr_clin", "pt_a", "cl_c", []string{"omh:step-count"}, time.Time{}, time.Time{}, expiry))
	check := func(t *testing.T) {
		t.Helper()
		gs, err := e.l.AppGrants("pt_a")
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) != 2 || gs[0].ID != other.Grant.ID || gs[1].ID != app.Grant.ID || gs[1].App != "cl_b" || gs[1].Clinician != "" || !gs[1].DataFrom.Equal(day(-10)) {
			t.Fatalf("app grants %+v", gs)
		}
		if gs, err := e.l.AppGrants("pt_other"); err != nil || len(gs) != 0 {
			t.Fatalf("another patient's app grants: %+v", gs)
		}
		if gs, err := e.l.Grants("pt_a", ""); err != nil || len(gs) != 1 || gs[0].ID != "gr_clin" {
			t.Fatalf("clinician grants of the patient: %+v", gs)
		}
		if gs, err := e.l.Grants("", "cl_b"); err != nil || len(gs) != 0 {
			t.Fatalf("grants to cl_b include the app's: %+v", gs)
		}
		for _, c := range []string{"cl_b", "", "app_2"} {
			if d := e.l.Decide(Request{c, "pt_a", "omh:blood-glucose:4.0", Window{}, t0}); d.Permit {
				t.Fatalf("Decide for %q permitted under an app grant: %+v", c, d)
			}
		}
		if d := e.l.Decide(Request{"cl_c", "pt_a", "omh:step-count:3.0", Window{}, t0}); !d.Permit {
			t.Fatalf("the clinician grant: %+v", d)
		}
		cases := []struct {
			name, id, patient, app string
			now                    time.Time
			want                   bool
		}{
			{"active", app.Grant.ID, "pt_a", "cl_b", t0, true},
			{"other app", app.Grant.ID, "pt_a", "app_2", t0, false},
			{"other patient", app.Grant.ID, "pt_b", "cl_b", t0, false},
			{"at expiry", app.Grant.ID, "pt_a", "cl_b", expiry, false},
			{"a clinician grant", "gr_clin", "pt_a", "cl_c", t0, false},
			{"unknown", "gr_none", "pt_a", "cl_b", t0, false},
		}
		for _, tc := range cases {
			if got := e.l.AppGrantActive(tc.id, tc.patient, tc.app, tc.now); got != tc.want {
				t.Errorf("%s: AppGrantActive %v, want %v", tc.name, got, tc.want)
			}
		}
		d := e.l.DecideApp(app.Grant.ID, "cl_b", Request{Patient: "pt_a", Schema: "omh:blood-glucose:4.0", Window: Window{day(-20), day(20)}, Now: t0})
		if !d.Permit || len(d.Windows) != 1 || !d.Windows[0].From.Equal(day(-10)) || !d.Windows[0].To.Equal(day(10)) {
			t.Fatalf("DecideApp: %+v", d)
		}
		if d := e.l.DecideApp(app.Grant.ID, "cl_b", Request{Patient: "pt_a", Schema: "omh:heart-rate:2.0", Now: t0}); d.Permit || d.Reason != "schema_not_granted" {
			t.Fatalf("DecideApp, another schema: %+v", d)
		}
		if d := e.l.DecideApp(app.Grant.ID, "app_2", Request{Patient: "pt_a", Schema: "omh:blood-glucose:4.0", Now: t0}); d.Permit {
			t.Fatalf("DecideApp, another app: %+v", d)
		}
	}
	t.Run("live", check)
	e.close(t)
	e.open(t)
	t.Run("reopened", check)
	if _, err := e.l.Rebuild(); err != nil {
		t.Fatal(err)
	}
	t.Run("rebuilt", check)
	if _, err := e.l.Verify(nil); err != nil {
		t.Fatal(err)
	}
}

// TestAppGrantRevoke: a revoke names the grant's app; it ends the grant at
// once, only once, and a revoke naming another app or a clinician is
// refused.
func TestAppGrantRevoke(t *testing.T) {
	e := newTestEnv(t)
	app := appGrantFor(t, "pt_a", "app_1", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry)
	e.append(t, app)
	g, err := e.l.Grant(app.Grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	wrongApp := NewRevoke("pt_a", g, t0)
	wrongApp.App = "app_2"
	asClinician := NewRevoke("pt_a", g, t0)
	asClinician.App, asClinician.Clinician = "", "cl_b"
	noApp := NewRevoke("pt_a", g, t0)
	noApp.App = ""
	for name, en := range map[string]Entry{"another app": wrongApp, "a clinician": asClinician, "no app": noApp} {
		if _, err := e.l.Append(en); err == nil {
			t.Errorf("revoke naming %s: appended", name)
		}
	}
	if !e.l.AppGrantActive(g.ID, "pt_a", "app_1", t0) {
		t.Fatal("refused revokes ended the grant")
	}
	rev := NewRevoke("pt_a", g, t0)
	if rev.App != "app_1" || rev.Clinician != "" {
		t.Fatalf("NewRevoke: %+v", rev)
	}
	ri := e.append(t, rev)
	if e.l.AppGrantActive(g.ID, "pt_a", "app_1", t0) {
		t.Fatal("active after its revoke committed")
	}
	if gs, err := e.l.AppGrants("pt_a"); err != nil || len(gs) != 1 || gs[0].RevokeIndex == nil || *gs[0].RevokeIndex != ri {
		t.Fatalf("app grants after revoke: %+v", gs)
	}
	if _, err := e.l.Append(NewRevoke("pt_a", g, t0)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("second revoke: %v", err)
	}
	// The index tampered back to active is caught, and a rebuild restores
	// the revoke.
	err = e.store.Ledger().Update(context.Background(), func(tx ledgerstore.WriteTx) error {
		st, err := e.l.getGrant(tx, g.ID)
		if err != nil {
			return err
		}
		st.RevokeIndex, st.RevokedAt = nil, nil
		return e.l.putGrant(tx, st)
	})
	if err != nil {
		t.Fatal(err)
	}
	var te *TamperError
	if _, err := e.l.Verify(nil); !errors.As(err, &te) {
		t.Fatalf("verify of a tampered index: %v", err)
	}
	if _, err := e.l.Rebuild(); err != nil {
		t.Fatal(err)
	}
	if e.l.AppGrantActive(g.ID, "pt_a", "app_1", t0) {
		t.Fatal("active after rebuild")
	}
}

// TestSignedAppGrant: an app grant signed with the patient's passkey is
// checked at append and by Verify like a clinician grant; the signature
// covers the app, so an entry moved to another app fails verify.
func TestSignedAppGrant(t *testing.T) {
	e := newTestEnv(t)
	a := consenttest.New(testRPID, testOrigin)
	pk := e.append(t, passkeyEntry("pt_a", a))
	bad := signGrant(t, appGrantFor(t, "pt_a", "app_1", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry), a, pk, consenttest.Options{})
	bad.Grant.Assertion.Signature[8] ^= 1
	if _, err := e.l.Append(bad); !errors.Is(err, ErrBadAssertion) {
		t.Fatalf("bad signature: %v", err)
	}
	other := consenttest.New(testRPID, testOrigin)
	otherPk := e.append(t, passkeyEntry("pt_b", other))
	if _, err := e.l.Append(signGrant(t, appGrantFor(t, "pt_a", "app_1", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry), other, otherPk, consenttest.Options{})); !errors.Is(err, ErrBadAssertion) {
		t.Fatalf("another patient's passkey: %v", err)
	}
	good := signGrant(t, appGrantFor(t, "pt_a", "app_1", []string{"omh:blood-glucose"}, time.Time{}, time.Time{}, expiry), a, pk, consenttest.Options{})
	gi := e.append(t, good)
	g, err := e.l.Grant(good.Grant.ID)
	if err != nil || !g.Signed || g.App != "app_1" {
		t.Fatalf("grant %+v, %v", g, err)
	}
	e.append(t, grantEntry(1))
	res, err := e.l.Verify(nil)
	if err != nil || res.SignedGrants != 1 {
		t.Fatalf("verify: %v, %d signed", err, res.SignedGrants)
	}
	e.rewriteEntry(t, gi, func(en *Entry) { en.App = "app_evil" })
	_, err = e.l.Verify(nil)
	var te *TamperError
	if !errors.As(err, &te) || te.Index != gi || !strings.Contains(te.What, "challenge") {
		t.Fatalf("verify after moving the grant to another app: %v", err)
	}
}
