package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
	"golang.org/x/mod/sumdb/tlog"
)

// MaxLedgerRows is how many of her ledger entries the ledger page lists,
// newest first.
const MaxLedgerRows = 200

type ledgerEntryView struct {
	Index     int64
	When      string
	Kind      string
	Summary   string
	LeafHash  string // standard base64, as the API serves it
	LeafShort string
	ProofLen  int
	Verifies  bool
	ProofURL  string
	Pending   bool // appended after the checkpoint: no proof against it yet
}

type ledgerBody struct {
	Checkpoint  string // the signed note, as served by /api/v1/ledger/checkpoint
	Size        int64
	RootHash    string
	Origin      string
	VerifierKey string
	Entries     []ledgerEntryView
	More        bool
	Max         int
	AllVerify   bool
}

// ledgerPage shows the current signed checkpoint and the entries that name
// the patient, each with its inclusion proof against that checkpoint. The
// server checks each proof (tlog.CheckRecord) as a convenience; the proof's
// JSON is linked so anyone can check it themselves.
func (s *Server) ledgerPage(w http.ResponseWriter, r *http.Request, sess session) error {
	d := s.signedData(r.Context(), sess, "Ledger", "ledger")
	b, err := s.buildLedger(r.Context(), sess.UserID)
	if err != nil {
		return &publicError{Status: http.StatusInternalServerError, Code: "unavailable", Title: "Ledger unavailable", Message: "The ledger could not be read just now. Try again shortly.", Cause: err}
	}
	d.Body = b
	return s.render(w, http.StatusOK, "patient_ledger", d)
}

func (s *Server) buildLedger(ctx context.Context, userID string) (ledgerBody, error) {
	// A checkpoint covering every entry so far: a new signature only when
	// entries arrived since the newest one (as ?fresh=1 on the API).
	signed, err := s.ledger.Sign()
	if err != nil {
		return ledgerBody{}, fmt.Errorf("sign checkpoint: %v", err)
	}
	cp, err := consent.OpenCheckpoint(signed, s.ledger.VerifierKey())
	if err != nil {
		return ledgerBody{}, fmt.Errorf("open checkpoint: %v", err)
	}
	b := ledgerBody{Checkpoint: string(signed), Size: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash[:]),
		Origin: cp.Origin, VerifierKey: s.ledger.VerifierKey(), Max: MaxLedgerRows, AllVerify: true}
	entries, more, err := s.ledger.PartyEntries(userID, cp.Size, MaxLedgerRows)
	if err != nil {
		return ledgerBody{}, err
	}
	b.More = more
	u, _ := s.vault.User(ctx, userID)
	loc := u.Location()
	names := map[string]string{}
	for _, pe := range entries {
		v := ledgerEntryView{Index: pe.Index, Kind: kindLabel(pe.Entry), Summary: s.entrySummary(ctx, pe.Entry, userID, names)}
		if t, err := time.Parse(time.RFC3339Nano, pe.Entry.Time); err == nil {
			v.When = fmtTime(t, loc)
		}
		v.LeafHash = base64.StdEncoding.EncodeToString(pe.LeafHash[:])
		v.LeafShort = v.LeafHash[:12] + "…"
		v.ProofURL = fmt.Sprintf("/api/v1/ledger/proof?index=%d&size=%d", pe.Index, cp.Size)
		v.Verifies, v.ProofLen = s.checkInclusion(pe, cp)
		b.AllVerify = b.AllVerify && v.Verifies
		b.Entries = append(b.Entries, v)
	}
	return b, nil
}

// checkInclusion checks an entry against a checkpoint as a client would:
// the leaf is the hash of the entry's own bytes, and the served proof
// (consent.Ledger.InclusionProof, what /api/v1/ledger/proof returns) must
// lead from it to the checkpoint's root.
func (s *Server) checkInclusion(pe consent.PartyEntry, cp consent.Checkpoint) (bool, int) {
	p, err := s.ledger.InclusionProof(pe.Index, cp.Size)
	if err != nil {
		return false, 0
	}
	leaf := tlog.RecordHash(pe.Raw)
	if leaf != pe.LeafHash || p.LeafHash != base64.StdEncoding.EncodeToString(leaf[:]) {
		return false, len(p.Proof)
	}
	proof := make(tlog.RecordProof, len(p.Proof))
	for i, h := range p.Proof {
		raw, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(raw) != tlog.HashSize {
			return false, len(p.Proof)
		}
		copy(proof[i][:], raw)
	}
	return tlog.CheckRecord(proof, cp.Size, cp.Hash, pe.Index, leaf) == nil, len(p.Proof)
}

// entryKinds name the entry kinds for people.
var entryKinds = map[string]string{
	consent.KindGrant:           "Grant",
	consent.KindRevoke:          "Revoke",
	consent.KindPasskey:         "Passkey registered",
	consent.KindAccessStart:     "Export started",
	consent.KindAccessEnd:       "Export ended",
	consent.KindAdmin:           "Account",
	consent.KindClinicianKeyAdd: "Clinician key added",
	consent.KindClinicianKeyDel: "Clinician key removed",
}

// adminActions describe admin entries about a user.
var adminActions = map[string]string{
	"user-add":     "Account created",
	"user-delete":  "Account deleted",
	"invite":       "Enrolment link made",
	"token-mint":   "API token made",
	"token-revoke": "API token revoked",
	"import":       "File imported by the administrator",
}

// entrySummary says what an entry records, in words, from ids the
// directory can name. It never shows another patient's name: entries that
// name the user name at most one other party, a clinician.
func (s *Server) entrySummary(ctx context.Context, e consent.Entry, self string, names map[string]string) string {
	who := func(id string) string {
		if id == "" || id == self {
			return "you"
		}
		if n, ok := names[id]; ok {
			return n
		}
		n := id
		if u, err := s.vault.User(ctx, id); err == nil && u.Role == vault.RoleClinician {
			n = u.Name
		}
		names[id] = n
		return n
	}
	if e.App != "" {
		// An app grant names the client id, never a person.
		who = func(string) string { return "the application " + e.App }
	}
	switch e.Kind {
	case consent.KindGrant:
		g := e.Grant
		signed := "unsigned (made with an API token)"
		if g.Assertion != nil {
			signed = "signed with your passkey"
		}
		return fmt.Sprintf("Grant %s to %s: %s; %s", g.ID, who(e.Clinician), schemaList(g.Schemas), signed)
	case consent.KindRevoke:
		by := ""
		if e.Actor == "admin" {
			by = " by the administrator"
		}
		return fmt.Sprintf("Grant %s (entry #%d) to %s revoked%s", e.Revoke.GrantID, e.Revoke.GrantIndex, who(e.Clinician), by)
	case consent.KindPasskey:
		return "A passkey for this account, with its public key"
	case consent.KindAccessStart:
		if e.Access.Format == reportFormat {
			return fmt.Sprintf("%s opened your report (%s) in the browser, under %s", who(e.Clinician), schemaList(e.Access.Schemas), strings.Join(e.Access.Grants, ", "))
		}
		return fmt.Sprintf("%s began an export of %s under %s", who(e.Clinician), schemaList(e.Access.Schemas), strings.Join(e.Access.Grants, ", "))
	case consent.KindAccessEnd:
		if e.Access.Format == reportFormat {
			start := int64(-1)
			if e.Access.Start != nil {
				start = *e.Access.Start
			}
			if e.Access.Incomplete {
				return fmt.Sprintf("%s's view of your report (entry #%d) was not shown", who(e.Clinician), start)
			}
			return fmt.Sprintf("%s's view of your report (entry #%d) was shown: %d readings summarised", who(e.Clinician), start, e.Access.Records)
		}
		st := ""
		if e.Access.Incomplete {
			st = ", cut short"
		}
		start := int64(-1)
		if e.Access.Start != nil {
			start = *e.Access.Start
		}
		return fmt.Sprintf("%s's export (entry #%d) ended: %d records%s", who(e.Clinician), start, e.Access.Records, st)
	case consent.KindAdmin:
		what := adminActions[e.Admin.Action]
		if what == "" {
			what = e.Admin.Action
		}
		by := " by the administrator"
		if e.Actor == self {
			by = " by you"
		}
		if strings.HasPrefix(e.Admin.Action, "token-") && e.Admin.Detail != "" {
			by += " (" + e.Admin.Detail + ")"
		}
		return what + by
	}
	return e.Kind
}

func kindLabel(e consent.Entry) string {
	if e.Access != nil && e.Access.Format == reportFormat {
		switch e.Kind {
		case consent.KindAccessStart:
			return "Report view started"
		case consent.KindAccessEnd:
			return "Report view ended"
		}
	}
	if l, ok := entryKinds[e.Kind]; ok {
		return l
	}
	return e.Kind
}
