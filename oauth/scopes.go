package oauth

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// The scopes the provider knows besides the SMART resource scopes.
const (
	scopeOpenID        = "openid"
	scopeFHIRUser      = "fhirUser"
	scopeProfile       = "profile"
	scopeOffline       = "offline_access"
	scopeLaunch        = "launch"
	scopeLaunchPatient = "launch/patient"
)

const (
	loincSystem    = "http://loinc.org"
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// schemaInfo is how one vault schema is reached by SMART scopes: its
// observation category (none for sleep) and the LOINC codes the FHIR
// export writes for it (export/fhir.go). Scope names the one granular
// scope that reaches exactly this schema, used when a patient keeps only
// some of the schemas an app asked for.
type schemaInfo struct {
	ID       string
	Category string
	Codes    []string
}

// schemaTable lists the schemas SMART scopes reach, in the stable order
// Pending.Schemas uses.
var schemaTable = []schemaInfo{
	{"omh:blood-glucose", "laboratory", []string{"99504-3", "105272-9", "41653-7", "14743-9", "2339-0", "15074-8"}},
	{"omh:blood-pressure", "vital-signs", []string{"85354-9"}},
	{"omh:body-temperature", "vital-signs", []string{"8310-5"}},
	{"omh:body-weight", "vital-signs", []string{"29463-7"}},
	{"omh:heart-rate", "vital-signs", []string{"8867-4"}},
	{"omh:oxygen-saturation", "vital-signs", []string{"2708-6", "59408-5"}},
	{"omh:respiratory-rate", "vital-signs", []string{"9279-1"}},
	{"omh:sleep-episode", "", []string{"93832-4"}},
	{"omh:step-count", "activity", []string{"55423-8"}},
}

// AllSchemas returns every schema SMART scopes can reach, in order.
func AllSchemas() []string {
	out := make([]string, len(schemaTable))
	for i, s := range schemaTable {
		out[i] = s.ID
	}
	return out
}

// narrowScope is the granular scope that reaches one schema alone: its
// category when no other schema shares it, else its first code.
func narrowScope(context, schema string) string {
	for _, s := range schemaTable {
		if s.ID != schema {
			continue
		}
		shared := false
		for _, o := range schemaTable {
			shared = shared || (o.ID != s.ID && o.Category == s.Category)
		}
		if s.Category != "" && !shared {
			return context + "/Observation.rs?category=" + categorySystem + "|" + s.Category
		}
		return context + "/Observation.rs?code=" + loincSystem + "|" + s.Codes[0]
	}
	return ""
}

// resourceScope is a parsed SMART resource scope.
type resourceScope struct {
	Context  string // patient or user
	Resource string // Observation, Patient or *
	Read     bool   // the scope grants reading (r or s, v1 read)
	Schemas  []string
	Whole    bool // a read of every Observation: Observation or *, no granular parameter
}

// scopeSet is what a list of requested scopes asks for, once read.
type scopeSet struct {
	Granted   []string // the scopes kept, as requested
	Resources map[string]resourceScope
	Patient   bool // patient/ resource scopes
	User      bool // user/ resource scopes
	Schemas   []string
	OpenID    bool
	Offline   bool
	Launch    bool // launch/patient
	EHR       bool // launch: an EHR launch (launch.go)
}

// ScopeError is a requested scope the provider refuses outright.
type ScopeError struct{ Scope, Reason string }

func (e *ScopeError) Error() string { return "scope " + e.Scope + ": " + e.Reason }

var (
	resourceRE = regexp.MustCompile(`^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$`)
	v2PermsRE  = regexp.MustCompile(`^c?r?u?d?s?$`)
)

// parseScopes reads the requested scopes. It never reads a scope more
// widely than it is written:
//
//   - malformed resource scopes (SMART v2 permission letters out of the
//     order c r u d s, or unknown letters) are refused with a ScopeError,
//     as is a request mixing patient/ and user/ scopes (launch, the EHR
//     launch, is checked with its launch parameter in launch.go);
//   - scopes the vault cannot serve are dropped: system/ scopes (no Backend
//     Services), write-only permissions (c, u, d, v1 write), resource
//     types other than Observation, Patient and *, granular parameters
//     other than one category and one code, and category or code values
//     no vault schema has;
//   - v2 permissions beyond read (patient/Observation.cruds) and v1 .* are
//     kept as written but grant reading only;
//   - other unknown scopes (email, online_access, ...) are dropped.
func parseScopes(requested []string) (scopeSet, error) {
	set := scopeSet{Resources: map[string]resourceScope{}}
	schemas := map[string]bool{}
	seen := map[string]bool{}
	for _, s := range requested {
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		switch s {
		case scopeOpenID:
			set.OpenID = true
		case scopeOffline:
			set.Offline = true
		case scopeLaunchPatient:
			set.Launch = true
		case scopeFHIRUser, scopeProfile:
		case scopeLaunch:
			set.EHR = true
		default:
			rs, keep, err := parseResourceScope(s)
			if err != nil {
				return set, err
			}
			if !keep {
				continue
			}
			set.Resources[s] = rs
			if rs.Context == "patient" {
				set.Patient = true
			} else {
				set.User = true
			}
			for _, id := range rs.Schemas {
				schemas[id] = true
			}
		}
		set.Granted = append(set.Granted, s)
	}
	if set.Patient && set.User {
		return set, &ScopeError{"patient/ and user/", "a request asks either for one patient's data (patient/) or for a clinician's (user/), not both"}
	}
	for _, s := range schemaTable {
		if schemas[s.ID] {
			set.Schemas = append(set.Schemas, s.ID)
		}
	}
	return set, nil
}

// parseResourceScope reads one context/Resource.permissions[?params]
// scope; keep is false for a scope that is well formed but dropped.
func parseResourceScope(s string) (rs resourceScope, keep bool, err error) {
	m := resourceRE.FindStringSubmatch(s)
	if m == nil {
		if strings.Contains(s, "/") && (strings.HasPrefix(s, "patient/") || strings.HasPrefix(s, "user/") || strings.HasPrefix(s, "system/")) {
			return rs, false, &ScopeError{s, "not a SMART resource scope (context/Resource.permissions)"}
		}
		return rs, false, nil // unknown scope: dropped
	}
	rs.Context, rs.Resource = m[1], m[2]
	perms, query := m[3], strings.TrimPrefix(m[4], "?")
	switch perms {
	case "read", "*":
		rs.Read = true
	case "write":
	default:
		if !v2PermsRE.MatchString(perms) {
			return rs, false, &ScopeError{s, "permissions must be letters of c r u d s, in that order (or v1 read, write, *)"}
		}
		rs.Read = strings.ContainsAny(perms, "rs")
	}
	if rs.Context == "system" || !rs.Read {
		return rs, false, nil
	}
	switch rs.Resource {
	case "Patient":
		return rs, query == "", nil
	case "*":
		if query != "" {
			return rs, false, nil
		}
		rs.Schemas, rs.Whole = AllSchemas(), true
		return rs, true, nil
	case "Observation":
	default:
		return rs, false, nil
	}
	if query == "" {
		rs.Schemas, rs.Whole = AllSchemas(), true
		return rs, true, nil
	}
	q, perr := url.ParseQuery(query)
	if perr != nil {
		return rs, false, nil
	}
	for k, v := range q {
		if (k != "category" && k != "code") || len(v) != 1 {
			return rs, false, nil
		}
	}
	for _, sc := range schemaTable {
		if c := q.Get("category"); c != "" && (sc.Category == "" || c != categorySystem+"|"+sc.Category) {
			continue
		}
		if c := q.Get("code"); c != "" && !slices.ContainsFunc(sc.Codes, func(code string) bool { return c == loincSystem+"|"+code }) {
			continue
		}
		rs.Schemas = append(rs.Schemas, sc.ID)
	}
	return rs, len(rs.Schemas) > 0, nil
}

// narrowTo rewrites the granted scopes for the schemas a patient kept: a
// resource scope whose schemas she all kept stays as it is; one she kept
// only some of is replaced by the granular scope of each schema kept; one
// she kept none of goes. Scopes that reach no schema (Patient, openid...)
// stay.
func narrowTo(set scopeSet, kept []string) []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, s := range set.Granted {
		rs, ok := set.Resources[s]
		if !ok || len(rs.Schemas) == 0 {
			add(s)
			continue
		}
		all := true
		for _, id := range rs.Schemas {
			all = all && slices.Contains(kept, id)
		}
		if all {
			add(s)
			continue
		}
		for _, id := range rs.Schemas {
			if slices.Contains(kept, id) {
				add(narrowScope(rs.Context, id))
			}
		}
	}
	return out
}

// hasObservationRead says whether granted scopes read Observations in the
// given context (user or patient).
func hasObservationRead(scopes []string, context string) bool {
	set, err := parseScopes(scopes)
	if err != nil {
		return false
	}
	for _, rs := range set.Resources {
		if rs.Context == context && len(rs.Schemas) > 0 {
			return true
		}
	}
	return false
}
