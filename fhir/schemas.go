package fhir

import (
	"slices"

	"github.com/jupyterhealth/vault/omh"
)

// Code systems the search parameters name.
const (
	loincSystem    = "http://loinc.org"
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	omhSystem      = "https://w3id.org/openmhealth"
)

// schemaInfo is one schema the API serves as Observations: its short
// code in resource ids, its category and the LOINC codes the export's
// mapping writes for it (export/fhir.go; TestSchemaTableMatchesExport
// keeps them equal).
type schemaInfo struct {
	name     string // namespace:name, as grants and scopes write it
	short    string // two letters, in Observation ids
	category string
	codes    []string
}

var schemaTable = []schemaInfo{
	{"omh:blood-glucose", "bg", "laboratory", []string{"99504-3", "105272-9", "41653-7", "14743-9", "2339-0", "15074-8"}},
	{"omh:blood-pressure", "bp", "vital-signs", []string{"85354-9"}},
	{"omh:body-temperature", "bt", "vital-signs", []string{"8310-5"}},
	{"omh:body-weight", "bw", "vital-signs", []string{"29463-7"}},
	{"omh:heart-rate", "hr", "vital-signs", []string{"8867-4"}},
	{"omh:oxygen-saturation", "os", "vital-signs", []string{"2708-6", "59408-5"}},
	{"omh:respiratory-rate", "rr", "vital-signs", []string{"9279-1"}},
	{"omh:sleep-episode", "se", "", []string{"93832-4"}},
	{"omh:step-count", "sc", "activity", []string{"55423-8"}},
}

// stored is the canonical schema id readings are stored under.
func (s schemaInfo) stored() string {
	id, err := omh.ParseSchemaID(s.name)
	if err != nil {
		return ""
	}
	c, _ := omh.CanonicalSchema(id)
	return c.String()
}

func schemaByName(name string) int {
	return slices.IndexFunc(schemaTable, func(s schemaInfo) bool { return s.name == name })
}

func schemaByShort(short string) int {
	return slices.IndexFunc(schemaTable, func(s schemaInfo) bool { return s.short == short })
}
