package oauth

import (
	"errors"
	"slices"
	"testing"
)

// TestParseScopes: the SMART grammar, v1 and v2, granular forms, and that
// nothing is read more widely than written.
func TestParseScopes(t *testing.T) {
	vitals := []string{"omh:blood-pressure", "omh:body-temperature", "omh:body-weight", "omh:heart-rate", "omh:oxygen-saturation", "omh:respiratory-rate"}
	for _, tc := range []struct {
		scope   string
		kept    bool
		refused bool
		schemas []string
		patient bool
	}{
		{"patient/Observation.rs", true, false, AllSchemas(), true},
		{"patient/Observation.r", true, false, AllSchemas(), true},
		{"patient/Observation.cruds", true, false, AllSchemas(), true},
		{"patient/*.read", true, false, AllSchemas(), true},
		{"patient/*.*", true, false, AllSchemas(), true},
		{"user/*.rs", true, false, AllSchemas(), false},
		{"patient/Patient.rs", true, false, nil, true},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs", true, false, vitals, true},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", true, false, []string{"omh:blood-glucose"}, true},
		{"patient/Observation.rs?code=http://loinc.org|8867-4", true, false, []string{"omh:heart-rate"}, true},
		{"patient/Observation.rs?code=http://loinc.org|93832-4", true, false, []string{"omh:sleep-episode"}, true},
		{"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|activity&code=http://loinc.org|8867-4", false, false, nil, false},
		// Dropped: never read more widely than written.
		{"patient/Observation.rs?code=8867-4", false, false, nil, false},
		{"patient/Observation.rs?code=http://loinc.org|0000-0", false, false, nil, false},
		{"patient/Observation.rs?status=final", false, false, nil, false},
		{"patient/Observation.rs?code=http://loinc.org|8867-4&code=http://loinc.org|9279-1", false, false, nil, false},
		{"patient/*.rs?code=http://loinc.org|8867-4", false, false, nil, false},
		{"patient/Condition.rs", false, false, nil, false},
		{"patient/Observation.c", false, false, nil, false},
		{"patient/Observation.write", false, false, nil, false},
		{"system/Observation.rs", false, false, nil, false},
		{"email", false, false, nil, false},
		{"online_access", false, false, nil, false},
		// Refused.
		{"patient/Observation.sr", false, true, nil, false},
		{"patient/Observation.dus", false, true, nil, false},
		{"patient/Observation.rx", false, true, nil, false},
		{"patient/Observation", false, true, nil, false},
		// launch (the EHR launch) is kept; Authorize checks its launch id.
		{"launch", true, false, nil, false},
	} {
		t.Run(tc.scope, func(t *testing.T) {
			set, err := parseScopes([]string{tc.scope})
			var se *ScopeError
			if tc.refused != errors.As(err, &se) {
				t.Fatalf("err = %v, refused %v", err, tc.refused)
			}
			if tc.refused {
				return
			}
			if kept := slices.Contains(set.Granted, tc.scope); kept != tc.kept {
				t.Fatalf("kept = %v, want %v", kept, tc.kept)
			}
			if !slices.Equal(set.Schemas, tc.schemas) || set.Patient != tc.patient {
				t.Fatalf("schemas %v patient %v, want %v %v", set.Schemas, set.Patient, tc.schemas, tc.patient)
			}
		})
	}
}

// TestNarrowTo: a patient keeping some schemas narrows each resource scope
// to granular ones that reach exactly what she kept.
func TestNarrowTo(t *testing.T) {
	for _, tc := range []struct {
		scopes, kept, want []string
	}{
		{[]string{"openid", "patient/Observation.rs"}, AllSchemas(), []string{"openid", "patient/Observation.rs"}},
		{[]string{"openid", "patient/*.read"}, []string{"omh:blood-glucose", "omh:heart-rate"},
			[]string{"openid", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", "patient/Observation.rs?code=http://loinc.org|8867-4"}},
		{[]string{"patient/Patient.rs", "patient/Observation.rs?code=http://loinc.org|8867-4"}, []string{"omh:step-count"}, []string{"patient/Patient.rs"}},
	} {
		set, err := parseScopes(tc.scopes)
		if err != nil {
			t.Fatal(err)
		}
		got := narrowTo(set, tc.kept)
		if !slices.Equal(got, tc.want) {
			t.Errorf("narrowTo(%v, %v) = %v, want %v", tc.scopes, tc.kept, got, tc.want)
		}
		// Every narrowed scope reaches only kept schemas.
		if again, err := parseScopes(got); err != nil || slices.ContainsFunc(again.Schemas, func(s string) bool { return !slices.Contains(tc.kept, s) }) {
			t.Errorf("narrowed %v reaches %v, %v", got, again.Schemas, err)
		}
	}
}
