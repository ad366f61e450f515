package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/stats"
	"github.com/jupyterhealth/vault/vault"
)

// The identifier system of vault user ids.
const userSystem = "urn:jupyterhealth-vault:user"

type identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type humanName struct {
	Text string `json:"text"`
}

// person is a Patient or a Practitioner: the vault holds an id and a
// name, nothing more.
type person struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Identifier   []identifier `json:"identifier"`
	Active       bool         `json:"active"`
	Name         []humanName  `json:"name,omitempty"`
}

func personOf(kind string, u vault.User) person {
	p := person{ResourceType: kind, ID: oauth.FHIRID(u.ID), Identifier: []identifier{{userSystem, u.ID}}, Active: true}
	if u.Name != "" {
		p.Name = []humanName{{u.Name}}
	}
	return p
}

// readPatient is GET /fhir/Patient/{id}: the patient herself (patient/
// scopes) or a patient who granted the clinician FHIR reads (user/).
func (s *Server) readPatient(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	if !t.PatientRead {
		return refuse(http.StatusForbidden, "forbidden", "scope", "reading Patient needs a Patient.rs (or *.rs) scope")
	}
	id := vaultID(r.PathValue("id"), vault.RolePatient)
	if id == "" {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Patient")
	}
	if ok, err := s.grantsToFHIR(t, id, s.now()); err != nil {
		return err
	} else if !ok {
		if t.Context == "patient" {
			return denied("other_patient")
		}
		return denied("no_grant")
	}
	u, err := s.records.User(r.Context(), id)
	if err != nil {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Patient")
	}
	writeJSON(w, http.StatusOK, personOf("Patient", u))
	return nil
}

// searchPatients is GET /fhir/Patient: the patient herself, or the
// patients who granted the clinician FHIR reads. _id narrows to one.
func (s *Server) searchPatients(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	if !t.PatientRead {
		return refuse(http.StatusForbidden, "forbidden", "scope", "searching Patient needs a Patient.rs (or *.rs) scope")
	}
	var only string
	for k, vs := range r.URL.Query() {
		switch k {
		case "_id":
			only = vaultID(vs[0], vault.RolePatient)
			if only == "" {
				return s.writeBundle(w, r, nil, "")
			}
		case "_count", "_format":
		default:
			return refuse(http.StatusBadRequest, "not-supported", "unknown_parameter", "Patient is searched by _id only")
		}
	}
	var ids []string
	if t.Context == "patient" {
		ids = []string{t.UserID}
	} else {
		gs, err := s.ReadableGrants(t, "")
		if err != nil {
			return err
		}
		for _, g := range gs {
			if !slices.Contains(ids, g.Patient) {
				ids = append(ids, g.Patient)
			}
		}
		slices.Sort(ids)
	}
	var entries []json.RawMessage
	for _, id := range ids {
		if only != "" && id != only {
			continue
		}
		u, err := s.records.User(r.Context(), id)
		if err != nil {
			continue // deleted meanwhile
		}
		e, err := s.entry(s.base+"/Patient/"+oauth.FHIRID(id), personOf("Patient", u))
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	return s.writeBundle(w, r, entries, "")
}

// readPractitioner is GET /fhir/Practitioner/{id}: the signed-in
// clinician herself (her fhirUser).
func (s *Server) readPractitioner(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	id := vaultID(r.PathValue("id"), vault.RoleClinician)
	if id == "" || id != t.UserID {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Practitioner (a clinician reads her own, her fhirUser)")
	}
	u, err := s.records.User(r.Context(), id)
	if err != nil {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Practitioner")
	}
	writeJSON(w, http.StatusOK, personOf("Practitioner", u))
	return nil
}

// searchConsents is GET /fhir/Consent?patient=ID: the grants the patient
// made to the signed-in clinician, as the API renders them (user/ scopes
// only; an app's token reads no grants).
func (s *Server) searchConsents(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var patient string
	for k, vs := range q {
		switch k {
		case "patient":
			patient = vaultID(vs[0], vault.RolePatient)
			if patient == "" {
				return refuse(http.StatusNotFound, "not-found", "unknown_patient", "no such patient")
			}
		case "_format":
		default:
			return refuse(http.StatusBadRequest, "not-supported", "unknown_parameter", "Consent is searched by patient only")
		}
	}
	now := s.now()
	if t.Context == "patient" {
		return s.appConsent(w, r, t, patient, now)
	}
	if patient == "" {
		return badParam("name the patient: Consent?patient=ID")
	}
	if ok, err := s.grantsToFHIR(t, patient, now); err != nil {
		return err
	} else if !ok {
		return denied("no_grant")
	}
	gs, err := s.ledger.Grants(patient, t.UserID)
	if err != nil {
		return err
	}
	var entries []json.RawMessage
	for _, g := range gs {
		c := api.FHIRConsent(g, now)
		e, err := s.entry(s.base+"/Consent/"+c.ID, c)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	return s.writeBundle(w, r, entries, "")
}

// clientSystem names OAuth clients in Consent.provision.actor.
const clientSystem = "urn:jupyterhealth-vault:oauth-client"

// appConsent is Consent?patient= for a patient's app (patient/ scopes):
// one Consent, the app grant its token was issued under, whose actor is
// the app (the OAuth client, by identifier). Not her other apps' grants,
// and not her grants to clinicians: who treats her is not the app's to
// know, and an app reads her data under its own grant only.
func (s *Server) appConsent(w http.ResponseWriter, r *http.Request, t oauth.AccessToken, patient string, now time.Time) error {
	if patient != "" && patient != t.UserID {
		return denied("other_patient")
	}
	g, err := s.ledger.Grant(t.GrantID)
	if err != nil && !errors.Is(err, consent.ErrNoGrant) {
		return err // the index could not be brought up to date
	}
	if err != nil || g.App != t.ClientID || g.Patient != t.UserID {
		return denied("no_grant")
	}
	b, err := json.Marshal(api.FHIRConsent(g, now))
	if err != nil {
		return err
	}
	// The shared rendering names a clinician as actor; an app grant's
	// actor is the app.
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	prov, _ := c["provision"].(map[string]any)
	actors, _ := prov["actor"].([]any)
	if len(actors) != 1 {
		return errors.New("fhir: the Consent rendering has no single actor")
	}
	actor, _ := actors[0].(map[string]any)
	actor["reference"] = map[string]any{"identifier": map[string]string{"system": clientSystem, "value": g.App}}
	e, err := s.entry(s.base+"/Consent/"+oauth.FHIRID(g.ID), c)
	if err != nil {
		return err
	}
	return s.writeBundle(w, r, []json.RawMessage{e}, "")
}

// The CGM summary's LOINC codes (HL7 CGM IG, cgm-summary-* profiles).
const (
	loincTIR        = "106793-3" // time in ranges panel
	loincVeryLow    = "104642-4" // time below level 2 (< 54 mg/dL)
	loincLow        = "104641-6" // time below level 1 (54–69)
	loincTarget     = "97510-2"  // time in range (70–180)
	loincHigh       = "104640-8" // time above level 1 (181–250)
	loincVeryHigh   = "104639-0" // time above level 2 (> 250)
	loincMean       = "97507-8"  // mean glucose, mg/dL
	loincGMI        = "97506-0"  // glucose management indicator, %
	loincCV         = "104638-2" // coefficient of variation, %
	loincSensorTime = "104637-4" // sensor active percentage, %
)

type quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	System string  `json:"system"`
	Code   string  `json:"code"`
}

type component struct {
	Code          concept  `json:"code"`
	ValueQuantity quantity `json:"valueQuantity"`
}

type period struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type reference struct {
	Reference string `json:"reference"`
}

type summaryObs struct {
	ResourceType    string      `json:"resourceType"`
	ID              string      `json:"id"`
	Meta            *meta       `json:"meta,omitempty"`
	Status          string      `json:"status"`
	Category        []concept   `json:"category"`
	Code            concept     `json:"code"`
	Subject         reference   `json:"subject"`
	EffectivePeriod period      `json:"effectivePeriod"`
	ValueQuantity   *quantity   `json:"valueQuantity,omitempty"`
	Component       []component `json:"component,omitempty"`
}

type meta struct {
	Profile []string `json:"profile"`
}

func pct(v float64) quantity {
	return quantity{Value: math.Round(v*100) / 100, Unit: "%", System: "http://unitsofmeasure.org", Code: "%"}
}

func loinc(code, display string) concept {
	return concept{Coding: []coding{{System: loincSystem, Code: code, Display: display}}}
}

// cgmSummary is GET /fhir/Observation/$cgm-summary?patient=ID[&start=
// YYYY-MM-DD&end=YYYY-MM-DD]: the HL7 CGM IG summary of the patient's
// glucose readings over the period (the 14 days to today by default),
// as a searchset of summary Observations, computed by package stats.
func (s *Server) cgmSummary(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	patient := ""
	now := s.now().UTC()
	end := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	start := end.AddDate(0, 0, -stats.CGMDays)
	for k, vs := range q {
		switch k {
		case "patient":
			if patient = vaultID(vs[0], vault.RolePatient); patient == "" {
				return refuse(http.StatusNotFound, "not-found", "unknown_patient", "no such patient")
			}
		case "start", "end":
			d, err := time.Parse("2006-01-02", vs[0])
			if err != nil {
				return badParam("%s is a date, YYYY-MM-DD", k)
			}
			if k == "start" {
				start = d
			} else {
				end = d.AddDate(0, 0, 1) // the end day is included
			}
		case "_format":
		default:
			return refuse(http.StatusBadRequest, "not-supported", "unknown_parameter", "$cgm-summary takes patient, start and end")
		}
	}
	if patient == "" {
		if t.Context != "patient" {
			return badParam("name the patient: Observation/$cgm-summary?patient=ID")
		}
		patient = t.UserID
	}
	if !start.Before(end) || end.Sub(start) > 366*24*time.Hour {
		return badParam("start must be before end, and the period at most a year")
	}
	win := consent.Window{From: start, To: end}
	bg := schemaByName("omh:blood-glucose")
	p, err := s.decide(t, patient, []int{bg}, win, s.now())
	if err != nil {
		return err
	}
	return s.logged(w, t, patient, []int{bg}, win, p, func() ([]byte, int64, error) {
		out, n, err := s.cgmObservations(r.Context(), patient, p, bg, start, end)
		if err != nil {
			return nil, 0, err
		}
		var entries []json.RawMessage
		for _, o := range out {
			e, err := s.entry(s.base+"/Observation/"+o.ID, o)
			if err != nil {
				return nil, 0, err
			}
			entries = append(entries, e)
		}
		return s.bundle(r, entries, ""), n, nil
	})
}

// cgmID is a summary Observation's id: the patient's id without "pt_",
// the period's first and last days and the measure, as
// cgm-abc-20260301-20260314-tir. It names a computation, not a stored
// reading: reading it back computes the summary again from the readings
// the grants allow then.
func cgmID(patient string, start, end time.Time, suffix string) string {
	return fmt.Sprintf("cgm-%s-%s-%s-%s", oauth.FHIRID(patient)[3:], start.Format("20060102"), end.AddDate(0, 0, -1).Format("20060102"), suffix)
}

// parseCGMID reads a cgmID back: the patient and the period [start, end).
func parseCGMID(id string) (patient string, start, end time.Time, suffix string, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 5 || parts[0] != "cgm" {
		return "", start, end, "", false
	}
	if patient = vaultID("pt-"+parts[1], vault.RolePatient); patient == "" {
		return "", start, end, "", false
	}
	var err1, err2 error
	start, err1 = time.Parse("20060102", parts[2])
	end, err2 = time.Parse("20060102", parts[3])
	if err1 != nil || err2 != nil || end.Before(start) || end.Sub(start) >= 366*24*time.Hour {
		return "", start, end, "", false
	}
	return patient, start, end.AddDate(0, 0, 1), parts[4], true
}

// cgmObservations computes the summary Observations of patient's glucose
// readings in [start, end), in the windows p allows, and how many
// readings they summarise.
func (s *Server) cgmObservations(ctx context.Context, patient string, p permit, bg int, start, end time.Time) ([]summaryObs, int64, error) {
	var pts []stats.Point
	for _, cw := range p.windows[bg] {
		for rd, err := range s.records.Readings(ctx, patient, schemaTable[bg].stored(), cw.From, cw.To) {
			if err != nil {
				return nil, 0, err
			}
			if v, ok := stats.GlucoseMgDL(rd.JSON); ok {
				pts = append(pts, stats.Point{Time: rd.Time, Value: v})
			}
		}
	}
	st := stats.SummarizeCGM(pts, end.Sub(start))
	per := period{Start: start.Format("2006-01-02"), End: end.AddDate(0, 0, -1).Format("2006-01-02")}
	subject := reference{"Patient/" + oauth.FHIRID(patient)}
	lab := []concept{{Coding: []coding{{System: categorySystem, Code: "laboratory", Display: "Laboratory"}}}}
	profile := func(p string) *meta {
		return &meta{Profile: []string{"http://hl7.org/fhir/uv/cgm/StructureDefinition/" + p}}
	}
	mk := func(suffix, prof string, code concept) summaryObs {
		return summaryObs{ResourceType: "Observation", ID: cgmID(patient, start, end, suffix), Meta: profile(prof), Status: "final",
			Category: lab, Code: code, Subject: subject, EffectivePeriod: per}
	}
	var out []summaryObs
	if st.N > 0 {
		tir := mk("tir", "cgm-summary-times-in-ranges", loinc(loincTIR, "Continuous glucose monitoring time in ranges panel"))
		for _, c := range []struct {
			code, display string
			v             float64
		}{
			{loincVeryLow, "Time below level 2", st.Ranges.VeryLow}, {loincLow, "Time below level 1", st.Ranges.Low},
			{loincTarget, "Time in range", st.Ranges.Target}, {loincHigh, "Time above level 1", st.Ranges.High},
			{loincVeryHigh, "Time above level 2", st.Ranges.VeryHigh},
		} {
			tir.Component = append(tir.Component, component{Code: loinc(c.code, c.display), ValueQuantity: pct(c.v)})
		}
		mean := mk("mean", "cgm-summary-mean-glucose-mass-per-volume", loinc(loincMean, "Mean glucose by continuous glucose monitoring"))
		mean.ValueQuantity = &quantity{Value: math.Round(st.Mean*10) / 10, Unit: "mg/dl", System: "http://unitsofmeasure.org", Code: "mg/dL"}
		gmi := mk("gmi", "cgm-summary-gmi", loinc(loincGMI, "Glucose management indicator"))
		gmi.ValueQuantity = ptr(pct(st.GMI))
		cv := mk("cv", "cgm-summary-coefficient-of-variation", loinc(loincCV, "Coefficient of variation of glucose"))
		cv.ValueQuantity = ptr(pct(st.CV))
		out = append(out, tir, mean, gmi, cv)
	}
	active := mk("active", "cgm-summary-sensor-active-percentage", loinc(loincSensorTime, "Sensor active percentage"))
	active.ValueQuantity = ptr(pct(st.ActivePct))
	out = append(out, active)
	return out, int64(st.N), nil
}

// readCGMObservation is GET /fhir/Observation/cgm-…: one summary
// Observation, computed again, decided and logged like the summary.
func (s *Server) readCGMObservation(w http.ResponseWriter, r *http.Request, t oauth.AccessToken, id string) error {
	patient, start, end, suffix, ok := parseCGMID(id)
	if !ok || !slices.Contains([]string{"tir", "mean", "gmi", "cv", "active"}, suffix) {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Observation")
	}
	win := consent.Window{From: start, To: end}
	bg := schemaByName("omh:blood-glucose")
	p, err := s.decide(t, patient, []int{bg}, win, s.now())
	if err != nil {
		return err
	}
	var found bool
	err = s.logged(w, t, patient, []int{bg}, win, p, func() ([]byte, int64, error) {
		out, n, err := s.cgmObservations(r.Context(), patient, p, bg, start, end)
		if err != nil {
			return nil, 0, err
		}
		for _, o := range out {
			if o.ID == id {
				found = true
				b, err := json.Marshal(o)
				return b, n, err
			}
		}
		// A measure not computed (no readings: only "active" is) or not
		// one at all: nothing is sent.
		return nil, n, errNoSuchSummary
	})
	if !found && errors.Is(err, errNoSuchSummary) {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Observation (the period has no readings for this measure)")
	}
	return err
}

var errNoSuchSummary = errors.New("no such summary observation")

func ptr[T any](v T) *T { return &v }
