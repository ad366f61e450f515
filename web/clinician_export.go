package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

// exportDefaultDays is the window the export builder starts with: the
// last 14 days, as the CGM summary and the example notebook use.
const exportDefaultDays = 14

type exportPatient struct {
	ID, Name string
	Schemas  []string // namespace:name, covered by an active grant
	Granted  string   // the same, for people
	Selected bool
}

type exportBody struct {
	Patients []exportPatient
	Schemas  []option
	Formats  []option
	Keys     []option // active keys
	// ChooseKey: several active keys and none chosen, so the form asks
	// for one (the export would be 400 recipient_required without it).
	ChooseKey  bool
	Pending    []clinicianKeyView
	From, To   string // YYYY-MM-DD in the clinician's zone
	TZ         string
	Built      bool
	Warnings   []string
	Curl       string
	Decrypt    string
	Holds      string // what the data-only file holds
	Python     string
	URL        string
	PatientSel string
}

// exportQuery is the builder's form, read from the query string: the page
// changes nothing, so it is a GET.
type exportQuery struct {
	Patient   string
	Schemas   []string
	From, To  string
	Format    string
	Recipient string
}

func (s *Server) clinicianExportPage(w http.ResponseWriter, r *http.Request, sess session) error {
	u, _ := s.vault.User(r.Context(), sess.UserID)
	loc := u.Location()
	now := s.now()
	q := r.URL.Query()
	in := exportQuery{Patient: q.Get("patient"), Schemas: q["schema"], From: q.Get("from"), To: q.Get("to"), Format: q.Get("format"), Recipient: q.Get("recipient")}
	today := now.In(loc)
	if in.From == "" && in.To == "" {
		in.From = today.AddDate(0, 0, 1-exportDefaultDays).Format(time.DateOnly)
		in.To = today.Format(time.DateOnly)
	}
	if in.Format == "" {
		in.Format = export.Formats()[0]
	}
	b := exportBody{From: in.From, To: in.To, TZ: loc.String()}

	// The patients with an active grant, and what those grants cover.
	byID := map[string]*exportPatient{}
	var order []string
	granted := map[string]bool{}
	gs, err := s.ledger.Grants("", sess.UserID)
	if err != nil {
		return grantsUnavailable(err)
	}
	for _, g := range gs {
		if !g.Active(now) {
			continue
		}
		p := byID[g.Patient]
		if p == nil {
			pu, err := s.vault.User(r.Context(), g.Patient)
			if err != nil {
				continue
			}
			p = &exportPatient{ID: pu.ID, Name: pu.Name}
			byID[g.Patient] = p
			order = append(order, g.Patient)
		}
		for _, sc := range g.Schemas {
			n := schemaName(sc)
			granted[n] = true
			if !slices.Contains(p.Schemas, n) {
				p.Schemas = append(p.Schemas, n)
			}
		}
	}
	for _, id := range order {
		p := byID[id]
		p.Selected = id == in.Patient
		p.Granted = schemaList(p.Schemas)
		b.Patients = append(b.Patients, *p)
	}
	slices.SortStableFunc(b.Patients, func(a, c exportPatient) int { return strings.Compare(a.Name, c.Name) })
	if in.Patient == "" && len(b.Patients) > 0 {
		b.Patients[0].Selected = true
	}
	if len(in.Schemas) == 0 {
		in.Schemas = []string{"omh:blood-glucose"}
	}
	for _, id := range omh.Supported() {
		v := id.Namespace + ":" + id.Name
		if !granted[v] {
			continue
		}
		b.Schemas = append(b.Schemas, option{Value: v, Label: schemaLabel(v), Selected: slices.Contains(in.Schemas, v)})
	}
	for _, f := range export.Formats() {
		b.Formats = append(b.Formats, option{Value: f, Label: exportFormatLabels[f], Selected: f == in.Format})
	}
	var active []consent.KeyState
	for _, k := range s.ledger.ClinicianKeys(sess.UserID) {
		switch keyStatus(k, now) {
		case "active":
			active = append(active, k)
			b.Keys = append(b.Keys, option{Value: k.Fingerprint, Label: k.Label + " (" + k.Fingerprint + ")", Selected: k.Fingerprint == in.Recipient})
		case "pending":
			b.Pending = append(b.Pending, clinicianKeyView{Label: k.Label, Fingerprint: k.Fingerprint, ActiveFrom: fmtTime(k.ActiveFrom, loc)})
		}
	}

	// The key is always a chosen one: the only active key is chosen for
	// the clinician, and with several the form requires a choice.
	if in.Recipient == "" && len(active) == 1 {
		in.Recipient = active[0].Fingerprint
		b.Keys[0].Selected = true
	}
	b.ChooseKey = in.Recipient == "" && len(active) > 1

	d := s.signedData(r.Context(), sess, "Export builder", "export")
	if q.Get("patient") != "" {
		status := s.buildExport(&b, in, byID, active, loc)
		d.Body = b
		return s.render(w, status, "clinician_export", d)
	}
	d.Body = b
	return s.render(w, http.StatusOK, "clinician_export", d)
}

// exportHolds says what 'vault decrypt --data-only' writes for each format.
var exportHolds = map[string]string{
	"omh":  "export.ndjson holds one Open mHealth data point (JSON) per line, exactly as the vault stores it.",
	"fhir": "export.ndjson holds one FHIR R4 Observation (JSON) per line, Bulk Data style, no Bundle.",
	"csv":  "export.csv is a plain CSV: a header row, then one row per reading (RFC 4180, LF line ends).",
}

var exportFormatLabels = map[string]string{
	"omh":  "Open mHealth NDJSON",
	"fhir": "FHIR R4 Observations (NDJSON)",
	"csv":  "CSV",
}

// buildExport checks the form and fills in the curl command and the
// Python snippet. What the export itself would refuse (a schema or window
// outside the grants, no active key) is a warning: the page runs nothing.
func (s *Server) buildExport(b *exportBody, in exportQuery, patients map[string]*exportPatient, active []consent.KeyState, loc *time.Location) int {
	p, ok := patients[in.Patient]
	if !ok {
		b.Warnings = append(b.Warnings, "Choose a patient from the list: only patients with an active grant to you can be exported.")
		return http.StatusBadRequest
	}
	b.PatientSel = p.Name
	var schemas []string
	for _, sc := range in.Schemas {
		id, err := omh.ParseSchemaID(sc)
		if err != nil {
			b.Warnings = append(b.Warnings, "Choose data types from the list.")
			return http.StatusBadRequest
		}
		if _, ok := omh.CanonicalSchema(id); !ok {
			b.Warnings = append(b.Warnings, "Choose data types from the list.")
			return http.StatusBadRequest
		}
		n := id.Namespace + ":" + id.Name
		if !slices.Contains(schemas, n) {
			schemas = append(schemas, n)
		}
	}
	if len(schemas) == 0 {
		b.Warnings = append(b.Warnings, "Choose at least one data type.")
		return http.StatusBadRequest
	}
	if !slices.Contains(export.Formats(), in.Format) {
		b.Warnings = append(b.Warnings, "Choose a format from the list.")
		return http.StatusBadRequest
	}
	var from, to string
	if in.From != "" {
		t, ok := day(in.From, loc, 0)
		if !ok {
			b.Warnings = append(b.Warnings, "The first day is not a date.")
			return http.StatusBadRequest
		}
		from = t.UTC().Format(time.RFC3339)
	}
	if in.To != "" {
		t, ok := day(in.To, loc, 1)
		if !ok {
			b.Warnings = append(b.Warnings, "The last day is not a date.")
			return http.StatusBadRequest
		}
		to = t.UTC().Format(time.RFC3339)
	}
	if from != "" && to != "" && from >= to {
		b.Warnings = append(b.Warnings, "The first day must not be after the last day.")
		return http.StatusBadRequest
	}
	for _, sc := range schemas {
		if !slices.Contains(p.Schemas, sc) {
			b.Warnings = append(b.Warnings, schemaLabel(sc)+": "+p.Name+"'s grants to you do not cover it, so this export would be refused (403 no_consent).")
		}
		if !export.Supports(in.Format, sc) {
			b.Warnings = append(b.Warnings, schemaLabel(sc)+" has no "+in.Format+" form: export it as omh or csv (the export would be refused with 400 format_unsupported).")
		}
	}
	recipient := ""
	switch {
	case in.Recipient != "":
		found := false
		for _, k := range active {
			found = found || k.Fingerprint == in.Recipient
		}
		if !found || !fingerprintRE.MatchString(in.Recipient) {
			b.Warnings = append(b.Warnings, "Choose a hub key from the list of your active keys.")
			return http.StatusBadRequest
		}
		recipient = in.Recipient
	case len(active) == 0:
		b.Warnings = append(b.Warnings, "You have no active hub key, so this export would be refused (409 no_active_key). Add one on the Hub keys page.")
	case len(active) > 1:
		// The export would be 400 recipient_required: no code without a key.
		b.Warnings = append(b.Warnings, "You have several active hub keys: choose the one this hub's identity opens (without one the export is refused with 400 recipient_required).")
		return http.StatusBadRequest
	}

	v := url.Values{}
	for _, sc := range schemas {
		v.Add("schema", sc)
	}
	if from != "" {
		v.Set("from", from)
	}
	if to != "" {
		v.Set("to", to)
	}
	v.Set("format", in.Format)
	if recipient != "" {
		v.Set("recipient", recipient)
	}
	b.URL = s.origin + "/api/v1/patients/" + url.PathEscape(p.ID) + "/export?" + v.Encode()
	b.Built = true
	ext := export.Extension(in.Format)
	b.Curl = "curl -fsS -H \"Authorization: Bearer $VAULT_TOKEN\" -o export.age \\\n  '" + b.URL + "'"
	b.Decrypt = "# checks the trailer the vault signed (count, SHA-256, signature by the pinned log key), then writes only the data lines\n" +
		"vault decrypt -i \"$VAULT_IDENTITY\" --verify-key \"$VAULT_LOG_KEY\" --data-only -o export." + ext + " export.age\n" +
		"# or the whole payload, unchecked: line 1 a JSON manifest, then the data lines, last line a JSON trailer\n" +
		"age -d -i \"$VAULT_IDENTITY\" -o payload.txt export.age"
	b.Holds = exportHolds[in.Format]

	var py strings.Builder
	py.WriteString("import jhvault\n\n")
	py.WriteString("# VAULT_URL, VAULT_TOKEN, VAULT_IDENTITY (or VAULT_IDENTITY_KEY) and VAULT_LOG_KEY come from the hub\n")
	py.WriteString("client = jhvault.Client()\n")
	py.WriteString("df = client.export(\n")
	py.WriteString("    " + pyString(p.ID) + ",  # " + commentSafe(p.Name) + "\n")
	py.WriteString("    [")
	for i, sc := range schemas {
		if i > 0 {
			py.WriteString(", ")
		}
		py.WriteString(pyString(sc))
	}
	py.WriteString("],\n")
	if from != "" {
		py.WriteString("    start=" + pyString(from) + ",\n")
	}
	if to != "" {
		py.WriteString("    end=" + pyString(to) + ",\n")
	}
	py.WriteString("    format=" + pyString(in.Format) + ",\n")
	if recipient != "" {
		py.WriteString("    recipient=" + pyString(recipient) + ",\n")
	}
	py.WriteString(")\n")
	if slices.Contains(schemas, "omh:blood-glucose") {
		py.WriteString("jhvault.time_in_range(df)  # share of CGM readings in 70–180 mg/dL\n")
	}
	b.Python = py.String()
	return http.StatusOK
}

// pyString quotes a value for a Python string literal. The values it gets
// are ids, schema names, times and fingerprints the page checked, but it
// escapes anyway.
func pyString(s string) string { return strconv.Quote(s) }

// commentSafe makes text safe to put in a one-line code comment: no
// control characters or line separators, so a name cannot end the comment
// and add code to the snippet a clinician copies.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
