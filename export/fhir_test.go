package export_test

// The FHIR encoder's Observations are checked here with a real FHIR
// library, github.com/google/fhir/go v0.7.4 (R4 jsonformat), imported only
// by tests. Its validating unmarshaller parses each line into the R4
// ContainedResource proto and runs its validation over it, so it refuses:
// unknown elements, malformed primitives (id, dateTime with a leap second
// or an offset beyond 14 hours, decimal, uri, code), codes outside a
// required binding (Observation.status), missing required elements
// (Observation.code, Observation.status), and references to a resource type
// an element does not allow (Observation.subject).
//
// It does not check: FHIRPath invariants, profiles (meta.profile is taken
// on trust), extensible bindings (the category codes), that a Quantity's
// code has a system, nor R4's dateTime regex beyond what Go's time parser
// refuses (it takes the year 0000). So checkObservationRules below checks
// by hand the R4 invariants that apply (obs-6, obs-7, qty-3, per-1, vs-2,
// vs-3), R4's id and dateTime regexes, and what each claimed profile
// requires: the R4 vital signs profiles' category, LOINC code and UCUM
// unit, and the HL7 CGM IG sensor reading profiles' code,
// effectiveDateTime and valueQuantity pattern. TestFHIRContent then checks
// every case's codes, units, values and times field by field.

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	obspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/observation_go_proto"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

func encR4(t testing.TB) *jsonformat.Unmarshaller {
	t.Helper()
	// NewUnmarshaller (not ...WithoutValidation) validates.
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatalf("jsonformat.NewUnmarshaller: %v", err)
	}
	return u
}

// parseR4Observation validates line as an R4 resource and returns it as an
// Observation.
func parseR4Observation(u *jsonformat.Unmarshaller, line []byte) (*obspb.Observation, error) {
	cr, err := u.UnmarshalR4(line)
	if err != nil {
		return nil, err
	}
	o := cr.GetObservation()
	if o == nil {
		return nil, errors.New("not an Observation")
	}
	return o, nil
}

// obsJSON is the generic form of an Observation, numbers kept as written.
type obsJSON = map[string]any

func decodeObs(t testing.TB, line []byte) obsJSON {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m obsJSON
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	return m
}

// get walks a path of member names and array indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	switch x := get(v, path...).(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

var (
	r4ID       = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	r4DateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
)

const (
	loinc   = "http://loinc.org"
	ucumSys = "http://unitsofmeasure.org"
	catSys  = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// loincCodes lists the LOINC codes of a CodeableConcept.
func loincCodes(t testing.TB, cc any) []string {
	t.Helper()
	var out []string
	codings, _ := get(cc, "coding").([]any)
	for _, c := range codings {
		if str(c, "system") != loinc {
			t.Errorf("coding %v is not LOINC", c)
			continue
		}
		if str(c, "display") == "" {
			t.Errorf("coding %v has no display", c)
		}
		out = append(out, str(c, "code"))
	}
	return out
}

// checkQuantity: qty-3, "if a code for the unit is present, the system SHALL
// also be present", and a UCUM system wherever there is a code.
func checkQuantity(t testing.TB, q any) {
	t.Helper()
	if q == nil {
		return
	}
	if str(q, "code") != "" && str(q, "system") != ucumSys {
		t.Errorf("qty-3: quantity %v has a code without the UCUM system", q)
	}
	if _, ok := get(q, "value").(json.Number); !ok {
		t.Errorf("quantity %v has no numeric value", q)
	}
}

func parseR4Time(t testing.TB, s string) time.Time {
	t.Helper()
	if !r4DateTime.MatchString(s) {
		t.Errorf("dateTime %q does not match R4's regex", s)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Errorf("dateTime %q: %v", s, err)
	}
	return tm
}

// vitalUnits: the UCUM codes each vital signs profile allows (R4: heartrate
// and resprate fix /min, oxygensat %, bodytemp binds Cel and [degF],
// bodyweight kg, g and [lb_av], bp's components mm[Hg]).
var vitalProfiles = map[string]struct {
	code  string
	units []string
}{
	pHR:   {"8867-4", []string{"/min"}},
	pRR:   {"9279-1", []string{"/min"}},
	pBT:   {"8310-5", []string{"Cel", "[degF]"}},
	pBW:   {"29463-7", []string{"kg", "g", "[lb_av]"}},
	pSpO2: {"2708-6", []string{"%"}},
	pBP:   {"85354-9", nil},
}

// checkObservationRules checks what the library does not (see the top of
// this file).
func checkObservationRules(t testing.TB, o obsJSON) {
	t.Helper()
	if id := str(o, "id"); id != "" && !r4ID.MatchString(id) {
		t.Errorf("id %q is not an R4 id", id)
	}
	if str(o, "resourceType") != "Observation" || str(o, "status") != "final" {
		t.Errorf("resourceType %q, status %q", str(o, "resourceType"), str(o, "status"))
	}
	if ref := str(o, "subject", "reference"); ref != "Patient/pt-nbswy3dpo5xxe3de" {
		t.Errorf("subject.reference = %q", ref)
	}
	// effective[x], per-1.
	switch {
	case get(o, "effectiveDateTime") != nil:
		parseR4Time(t, str(o, "effectiveDateTime"))
	case get(o, "effectivePeriod") != nil:
		start := parseR4Time(t, str(o, "effectivePeriod", "start"))
		if e := str(o, "effectivePeriod", "end"); e != "" {
			if end := parseR4Time(t, e); end.Before(start) {
				t.Errorf("per-1: period end %s before start", e)
			}
		}
	default:
		t.Errorf("no effective[x]")
	}
	value := get(o, "valueQuantity")
	checkQuantity(t, value)
	comps, _ := get(o, "component").([]any)
	if get(o, "extension") != nil {
		// The generic form of a reading without a typed model: coded with
		// its schema id, not LOINC (checkAttachment checks it).
		return
	}
	codes := loincCodes(t, get(o, "code"))
	if len(codes) == 0 && str(o, "code", "text") == "" {
		t.Errorf("code has neither a coding nor text")
	}
	// obs-6: dataAbsentReason only when there is no value.
	if value != nil && get(o, "dataAbsentReason") != nil {
		t.Errorf("obs-6: both a value and a dataAbsentReason")
	}
	for _, c := range comps {
		cc := loincCodes(t, get(c, "code"))
		// obs-7: a component's code differs from the Observation's when
		// the Observation has a value.
		if value != nil && len(cc) > 0 && slices.Contains(codes, cc[0]) {
			t.Errorf("obs-7: component code %s repeats the observation code", cc[0])
		}
		// vs-3 (and any component): a value or a dataAbsentReason.
		if get(c, "valueQuantity") == nil && get(c, "dataAbsentReason") == nil {
			t.Errorf("vs-3: component %v has no value", c)
		}
		checkQuantity(t, get(c, "valueQuantity"))
	}

	profiles, _ := get(o, "meta", "profile").([]any)
	for _, pr := range profiles {
		p, _ := pr.(string)
		if vp, ok := vitalProfiles[p]; ok {
			cats, _ := get(o, "category").([]any)
			vital := false
			for _, c := range cats {
				if str(c, "coding", 0, "system") == catSys && str(c, "coding", 0, "code") == "vital-signs" {
					vital = true
				}
			}
			if !vital {
				t.Errorf("%s: category vital-signs missing", p)
			}
			if !slices.Contains(codes, vp.code) {
				t.Errorf("%s: code %v lacks %s", p, codes, vp.code)
			}
			// vs-2: a value, a dataAbsentReason, or components.
			if value == nil && get(o, "dataAbsentReason") == nil && len(comps) == 0 {
				t.Errorf("vs-2: no value, dataAbsentReason or component")
			}
			if vp.units != nil && !slices.Contains(vp.units, str(value, "code")) {
				t.Errorf("%s: unit %q not in %v", p, str(value, "code"), vp.units)
			}
			if p == pBP {
				if value != nil || len(comps) != 2 {
					t.Errorf("bp: want two components and no value")
				}
				for i, want := range []string{"8480-6", "8462-4"} {
					if got := str(comps[i], "code", "coding", 0, "code"); got != want {
						t.Errorf("bp component %d code %q, want %s", i, got, want)
					}
					if got := str(comps[i], "valueQuantity", "code"); got != "mm[Hg]" {
						t.Errorf("bp component %d unit %q, want mm[Hg]", i, got)
					}
				}
			}
			continue
		}
		var code, ucum, unit string
		switch p {
		case pCGMm:
			code, ucum, unit = "99504-3", "mg/dL", "mg/dl"
		case pCGMn:
			code, ucum, unit = "105272-9", "mmol/L", "mmol/l"
		default:
			t.Errorf("unexpected profile %q", p)
			continue
		}
		if !slices.Equal(codes, []string{code}) {
			t.Errorf("%s: code %v, want %s", p, codes, code)
		}
		if get(o, "effectiveDateTime") == nil {
			t.Errorf("%s: effectiveDateTime is required", p)
		}
		if str(value, "system") != ucumSys || str(value, "code") != ucum || str(value, "unit") != unit {
			t.Errorf("%s: valueQuantity %v, want the pattern %s %q", p, value, ucum, unit)
		}
	}
}

// encodeFHIR encodes one point and validates it.
func encodeFHIR(t testing.TB, u *jsonformat.Unmarshaller, enc export.Encoder, point []byte) ([]byte, *obspb.Observation, obsJSON) {
	t.Helper()
	out, err := enc.AppendRecord(nil, point)
	if err != nil {
		t.Fatalf("AppendRecord: %v", err)
	}
	oneLine(t, "fhir", out)
	line := out[:len(out)-1]
	ob, err := parseR4Observation(u, line)
	if err != nil {
		t.Fatalf("not a valid R4 Observation: %v\n%s", err, line)
	}
	m := decodeObs(t, line)
	checkObservationRules(t, m)
	return line, ob, m
}

// TestFHIRContent validates every case's Observation and checks its
// content field by field.
func TestFHIRContent(t *testing.T) {
	u := encR4(t)
	enc := mustEncoder(t, "fhir")
	if enc.Header() != nil {
		t.Errorf("fhir Header() = %q, want nil", enc.Header())
	}
	for _, c := range encCases(t) {
		if c.fhir == nil {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			w := c.fhir
			line, ob, o := encodeFHIR(t, u, enc, c.point)
			defer func() {
				if t.Failed() {
					t.Logf("observation: %s", line)
				}
			}()
			if c.p.UUID != "" {
				if str(o, "id") != c.p.UUID {
					t.Errorf("id = %q, want the uuid %s", str(o, "id"), c.p.UUID)
				}
				if got := get(o, "identifier").([]any); len(got) != 1 || str(got[0], "system") != "urn:ietf:rfc:3986" || str(got[0], "value") != "urn:uuid:"+c.p.UUID {
					t.Errorf("identifier = %v", got)
				}
			} else if get(o, "id") != nil || get(o, "identifier") != nil {
				t.Errorf("a point without uuid got id %v, identifier %v", get(o, "id"), get(o, "identifier"))
			}
			if got := loincCodes(t, get(o, "code")); !slices.Equal(got, w.codes) {
				t.Errorf("codes = %v, want %v", got, w.codes)
			}
			if w.codeText != "" && str(o, "code", "text") != w.codeText {
				t.Errorf("code.text = %q, want %q", str(o, "code", "text"), w.codeText)
			}
			cats, _ := get(o, "category").([]any)
			switch {
			case w.category == "" && cats != nil:
				t.Errorf("category = %v, want none", cats)
			case w.category != "" && (len(cats) != 1 || str(cats[0], "coding", 0, "code") != w.category || str(cats[0], "coding", 0, "system") != catSys):
				t.Errorf("category = %v, want %s", cats, w.category)
			}
			if got := str(o, "meta", "profile", 0); got != w.profile {
				t.Errorf("profile = %q, want %q", got, w.profile)
			}
			if w.value == "" {
				if get(o, "valueQuantity") != nil {
					t.Errorf("valueQuantity = %v, want none", get(o, "valueQuantity"))
				}
			} else {
				q := get(o, "valueQuantity")
				if str(q, "value") != w.value || str(q, "unit") != w.unit || str(q, "code") != w.ucum || str(q, "system") != ucumSys {
					t.Errorf("valueQuantity = %v, want %s %q (UCUM %s)", q, w.value, w.unit, w.ucum)
				}
				// The library reads the same digits.
				if got := ob.GetValue().GetQuantity().GetValue().GetValue(); got != w.value {
					t.Errorf("the library reads value %q, want %q", got, w.value)
				}
			}
			comps, _ := get(o, "component").([]any)
			if len(comps) != len(w.comps) {
				t.Errorf("components = %v, want %v", comps, w.comps)
			} else {
				for i, wc := range w.comps {
					if got := str(comps[i], "code", "coding", 0, "code"); got != wc.code {
						t.Errorf("component %d code %q, want %s", i, got, wc.code)
					}
					if q := get(comps[i], "valueQuantity"); str(q, "value") != wc.value || str(q, "code") != wc.ucum {
						t.Errorf("component %d value %v, want %s %s", i, q, wc.value, wc.ucum)
					}
				}
			}
			if w.dateTime != "" {
				if got := str(o, "effectiveDateTime"); got != w.dateTime || get(o, "effectivePeriod") != nil {
					t.Errorf("effectiveDateTime = %q, want %q", got, w.dateTime)
				}
			} else {
				if get(o, "effectiveDateTime") != nil {
					t.Errorf("effectiveDateTime %v, want a period", get(o, "effectiveDateTime"))
				}
				if got := str(o, "effectivePeriod", "start"); got != w.start {
					t.Errorf("effectivePeriod.start = %q, want %q", got, w.start)
				}
				if got := str(o, "effectivePeriod", "end"); got != w.end {
					t.Errorf("effectivePeriod.end = %q, want %q", got, w.end)
				}
			}
			// The effective time is the reading's time.
			eff := str(o, "effectiveDateTime")
			if eff == "" {
				eff = str(o, "effectivePeriod", "start")
			}
			if tm, err := time.Parse(time.RFC3339Nano, eff); err != nil || !tm.Equal(c.p.Time) {
				t.Errorf("effective time %q is not the reading's time %s", eff, c.p.Time)
			}
			if got := str(o, "device", "display"); got != w.device {
				t.Errorf("device.display = %q, want %q", got, w.device)
			}
		})
	}
}

// TestFHIRExamples runs the official example points through the encoder.
func TestFHIRExamples(t *testing.T) {
	u := encR4(t)
	enc := mustEncoder(t, "fhir")
	want := map[string]string{
		"blood-glucose":     "2339-0", // no specimen_source: glucose in blood
		"blood-pressure":    "85354-9",
		"body-temperature":  "8310-5",
		"heart-rate":        "8867-4",
		"oxygen-saturation": "2708-6",
		"respiratory-rate":  "9279-1",
		"rr-interval":       "omh:rr-interval:1.0", // no typed model: the generic form
	}
	for _, ex := range encExamples(t) {
		t.Run(ex.name, func(t *testing.T) {
			line, _, o := encodeFHIR(t, u, enc, ex.point)
			if got := str(o, "code", "coding", 0, "code"); got != want[ex.p.Schema.Name] {
				t.Errorf("code %q, want %q\n%s", got, want[ex.p.Schema.Name], line)
			}
			if str(o, "id") != ex.p.UUID {
				t.Errorf("id %q, want %q", str(o, "id"), ex.p.UUID)
			}
		})
	}
}

// TestFHIRRefusesPhysicalActivity: AppendRecord refuses what Supports
// refuses, with an error naming the schema and nothing else.
func TestFHIRRefusesPhysicalActivity(t *testing.T) {
	enc := mustEncoder(t, "fhir")
	for _, c := range encCases(t) {
		if c.p.Schema.Name != "physical-activity" {
			continue
		}
		if export.Supports("fhir", c.p.Schema.String()) {
			t.Errorf("Supports(fhir, %s) = true", c.p.Schema)
		}
		out, err := enc.AppendRecord([]byte("kept"), c.point)
		if !errors.Is(err, export.ErrUnsupported) || string(out) != "kept" {
			t.Errorf("%s: %q, %v", c.name, out, err)
		}
		if !strings.Contains(err.Error(), "omh:physical-activity:1.2") || strings.Contains(err.Error(), "walking") {
			t.Errorf("error %q should name the schema and no value", err)
		}
	}
}

// TestFHIRSupportsEveryOtherSchema: each schema Supports allows for fhir
// has a case in the table, so the table covers the whole mapping.
func TestFHIRSupportsEveryOtherSchema(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range encCases(t) {
		if c.fhir != nil {
			covered[c.p.Schema.Name] = true
		}
	}
	for _, id := range omh.Supported() {
		if export.Supports("fhir", id.String()) && !covered[id.Name] {
			t.Errorf("no fhir case for %s", id)
		}
	}
}

// TestFHIRPatientReference: the vault's "_" becomes "-" in the reference.
func TestFHIRPatientReference(t *testing.T) {
	enc, err := export.NewEncoder("fhir", "pt_ABC.def_9")
	if err != nil {
		t.Fatal(err)
	}
	out, err := enc.AppendRecord(nil, encCases(t)[0].point)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"subject":{"reference":"Patient/pt-ABC.def-9"}`)) {
		t.Errorf("subject not mapped: %s", out)
	}
}
