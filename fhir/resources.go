package fhir

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
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
	if !s.grantsToFHIR(t, id, s.now()) {
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
	now := s.now()
	var ids []string
	if t.Context == "patient" {
		ids = []string{t.UserID}
	} else {
		for _, g := range s.ledger.Grants("", t.UserID) {
			if !slices.Contains(ids, g.Patient) && s.grantsToFHIR(t, g.Patient, now) {
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
	if t.Context != "user" {
		return refuse(http.StatusForbidden, "forbidden", "scope", "Consent is read with user/ scopes (a clinician reading the grants made to her)")
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
	if patient == "" {
		return badParam("name the patient: Consent?patient=ID")
	}
	now := s.now()
	if !s.grantsToFHIR(t, patient, now) {
		return denied("no_grant")
	}
	var entries []json.RawMessage
	for _, g := range s.ledger.Grants(patient, t.UserID) {
		c := api.FHIRConsent(g, now)
		e, err := s.entry(s.base+"/Consent/"+c.ID, c)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	return s.writeBundle(w, r, entries, "")
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
		var pts []stats.Point
		for _, cw := range p.windows[bg] {
			for rd, err := range s.records.Readings(r.Context(), patient, schemaTable[bg].stored(), cw.From, cw.To) {
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
		idBase := fmt.Sprintf("cgm-%s-%s-%s", oauth.FHIRID(patient)[3:], start.Format("20060102"), end.AddDate(0, 0, -1).Format("20060102"))
		profile := func(p string) *meta {
			return &meta{Profile: []string{"http://hl7.org/fhir/uv/cgm/StructureDefinition/" + p}}
		}
		mk := func(suffix, prof string, code concept) summaryObs {
			return summaryObs{ResourceType: "Observation", ID: idBase + "-" + suffix, Meta: profile(prof), Status: "final",
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
		var entries []json.RawMessage
		for _, o := range out {
			e, err := s.entry(s.base+"/Observation/"+o.ID, o)
			if err != nil {
				return nil, 0, err
			}
			entries = append(entries, e)
		}
		return s.bundle(r, entries, ""), int64(st.N), nil
	})
}

func ptr[T any](v T) *T { return &v }
