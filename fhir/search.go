package fhir

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/omh"
	"github.com/jupyterhealth/vault/vault"
)

// Paging limits of the Observation search.
const (
	DefaultCount = 100  // _count when absent
	MaxCount     = 1000 // the most _count may ask for
)

// obsQuery is an Observation search, read and checked.
type obsQuery struct {
	patient string // vault id
	schemas []int  // what code and category reach, before scopes
	loinc   []string
	whole   []int // schemas an OMH code names: their readings skip the LOINC filter
	window  consent.Window
	count   int
	desc    bool
	cursor  string
}

func badParam(format string, a ...any) *Error {
	return refuse(http.StatusBadRequest, "invalid", "bad_search", format, a...)
}

// parseObsQuery reads an Observation search. Unknown parameters are
// refused, never ignored: a search must not read more widely than
// written.
func parseObsQuery(q url.Values, self string) (obsQuery, error) {
	o := obsQuery{count: DefaultCount}
	codeSchemas, catSchemas := allSchemas(), allSchemas()
	for k, vs := range q {
		switch k {
		case "patient", "subject":
			if len(vs) != 1 {
				return o, badParam("give %s once", k)
			}
			v := strings.TrimPrefix(vs[0], "Patient/")
			if id := vaultID(v, "patient"); id != "" {
				o.patient = id
			} else {
				return o, refuse(http.StatusNotFound, "not-found", "unknown_patient", "no such patient")
			}
		case "code":
			var err error
			if codeSchemas, o.loinc, o.whole, err = parseCodes(vs); err != nil {
				return o, err
			}
		case "category":
			catSchemas = nil
			for _, v := range vs {
				for _, tok := range strings.Split(v, ",") {
					sys, code, hasSys := strings.Cut(tok, "|")
					if !hasSys {
						code, sys = sys, ""
					}
					if sys != "" && sys != categorySystem {
						continue
					}
					for i, s := range schemaTable {
						if s.category != "" && s.category == code && !slices.Contains(catSchemas, i) {
							catSchemas = append(catSchemas, i)
						}
					}
				}
			}
		case "date":
			for _, v := range vs {
				w, err := parseDate(v)
				if err != nil {
					return o, err
				}
				o.window = intersectWindow(o.window, w)
			}
		case "_count":
			n, err := strconv.Atoi(vs[0])
			if len(vs) != 1 || err != nil || n < 1 || n > MaxCount {
				return o, badParam("_count is a whole number from 1 to %d", MaxCount)
			}
			o.count = n
		case "_sort":
			switch strings.Join(vs, ",") {
			case "date":
			case "-date":
				o.desc = true
			default:
				return o, badParam("_sort is date (oldest first) or -date (newest first)")
			}
		case "_cursor":
			o.cursor = vs[0]
		case "_format":
			if v := vs[0]; v != "json" && v != ContentType && v != "application/json" {
				return o, refuse(http.StatusNotAcceptable, "not-supported", "bad_format", "the API answers JSON only (application/fhir+json)")
			}
		default:
			return o, refuse(http.StatusBadRequest, "not-supported", "unknown_parameter",
				"search parameter %q is not supported; Observation is searched by patient, code, category, date, _count, _sort", k)
		}
	}
	for _, i := range codeSchemas {
		if slices.Contains(catSchemas, i) {
			o.schemas = append(o.schemas, i)
		}
	}
	return o, nil
}

func allSchemas() []int {
	out := make([]int, len(schemaTable))
	for i := range out {
		out[i] = i
	}
	return out
}

// parseCodes reads code tokens (comma-separated, repeated: any of them):
// http://loinc.org|CODE, https://w3id.org/openmhealth|NAMESPACE:NAME[:VERSION],
// or a bare code of either. It returns the schemas they reach, the LOINC
// codes a reading must carry, and the schemas an OMH code names whole
// (their readings need no LOINC code: a schema without a typed model has
// none). An OMH code reaches the schema its readings are stored under
// (omh.CanonicalSchema): omh:blood-glucose and omh:blood-glucose:3.0 the
// typed omh:blood-glucose:4.0, omh:blood-glucose:2.0 itself (stored
// without a typed model), ieee:food-entry its latest embedded version.
func parseCodes(vs []string) (schemas []int, loinc []string, whole []int, err error) {
	for _, v := range vs {
		for _, tok := range strings.Split(v, ",") {
			sys, code, hasSys := strings.Cut(tok, "|")
			if !hasSys {
				code, sys = sys, ""
			}
			if code == "" {
				return nil, nil, nil, badParam("a code token is system|code, such as http://loinc.org|99504-3")
			}
			if i := omhSchema(sys, code); i >= 0 {
				if !slices.Contains(whole, i) {
					whole = append(whole, i)
				}
				if !slices.Contains(schemas, i) {
					schemas = append(schemas, i)
				}
			}
			if sys == "" || sys == loincSystem {
				for i, s := range schemaTable {
					if slices.Contains(s.codes, code) {
						if !slices.Contains(schemas, i) {
							schemas = append(schemas, i)
						}
						loinc = append(loinc, code)
					}
				}
			}
		}
	}
	slices.Sort(schemas)
	return schemas, loinc, whole, nil
}

// omhSchema is the schema (index in schemaTable) an OMH code reaches, or
// -1: another system, not a schema id, or one the vault does not store.
func omhSchema(sys, code string) int {
	if sys != "" && sys != omhSystem {
		return -1
	}
	id, err := omh.ParseSchemaID(code)
	if err != nil {
		return -1
	}
	canon, ok := omh.CanonicalSchema(id)
	if !ok {
		return -1
	}
	return schemaByStored(canon.String())
}

// parseDate reads one date parameter, prefix and value, as the window of
// reading times it keeps. The value's precision is its range: 2026 is
// the year, 2026-03 the month, 2026-03-04 the day (UTC), a dateTime to
// the second (or its fraction) that instant's precision. Times need an
// offset (Z or ±hh:mm).
func parseDate(v string) (consent.Window, error) {
	prefix := "eq"
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := dateRange(v)
	if err != nil {
		return consent.Window{}, err
	}
	switch prefix {
	case "eq":
		return consent.Window{From: lo, To: hi}, nil
	case "ge":
		return consent.Window{From: lo}, nil
	case "gt":
		return consent.Window{From: hi}, nil
	case "le":
		return consent.Window{To: hi}, nil
	case "lt":
		return consent.Window{To: lo}, nil
	}
	return consent.Window{}, badParam("date prefixes are eq, ge, gt, le and lt")
}

func dateRange(v string) (lo, hi time.Time, err error) {
	bad := badParam("date is YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 date-time with an offset, such as ge2026-03-04T10:00:00Z")
	switch len(v) {
	case 4:
		t, e := time.Parse("2006", v)
		if e != nil {
			return lo, hi, bad
		}
		return t, t.AddDate(1, 0, 0), nil
	case 7:
		t, e := time.Parse("2006-01", v)
		if e != nil {
			return lo, hi, bad
		}
		return t, t.AddDate(0, 1, 0), nil
	case 10:
		t, e := time.Parse("2006-01-02", v)
		if e != nil {
			return lo, hi, bad
		}
		return t, t.AddDate(0, 0, 1), nil
	}
	t, e := time.Parse(time.RFC3339Nano, v)
	if e != nil || !vault.TimeInRange(t) {
		return lo, hi, bad
	}
	// The precision is the digits written after the seconds' point.
	step := time.Second
	if _, frac, ok := strings.Cut(v, "."); ok {
		digits := 0
		for _, c := range frac {
			if c < '0' || c > '9' {
				break
			}
			digits++
		}
		for range min(digits, 9) {
			step /= 10
		}
	}
	t = t.UTC()
	return t, t.Add(step), nil
}

// intersectWindow narrows a to b (a zero end is open).
func intersectWindow(a, b consent.Window) consent.Window {
	if !b.From.IsZero() && (a.From.IsZero() || b.From.After(a.From)) {
		a.From = b.From
	}
	if !b.To.IsZero() && (a.To.IsZero() || b.To.Before(a.To)) {
		a.To = b.To
	}
	return a
}

// emptyWindow reports a window with nothing in it.
func emptyWindow(w consent.Window) bool {
	return !w.From.IsZero() && !w.To.IsZero() && !w.From.Before(w.To)
}
