package fhir

import (
	"slices"

	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/omh"
)

// Code systems the search parameters name.
const (
	loincSystem    = "http://loinc.org"
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	omhSystem      = omh.CodeSystem
)

// schemaInfo is one schema the API serves as Observations: its short
// code in resource ids, and, from the export's mapping (export.FHIRSchemas,
// the one table of codes), its category and the LOINC codes its
// Observations can carry.
type schemaInfo struct {
	name     string // namespace:name, as grants and scopes write it
	short    string // two letters, in Observation ids
	category string
	codes    []string
}

// schemaTable is every schema the export maps, each with its short code;
// its order is the order of a search's sources and of cursor positions,
// so it only ever grows at the end.
var schemaTable = withCodes([]schemaInfo{
	{name: "omh:blood-glucose", short: "bg"},
	{name: "omh:blood-pressure", short: "bp"},
	{name: "omh:body-temperature", short: "bt"},
	{name: "omh:body-weight", short: "bw"},
	{name: "omh:heart-rate", short: "hr"},
	{name: "omh:oxygen-saturation", short: "os"},
	{name: "omh:respiratory-rate", short: "rr"},
	{name: "omh:sleep-episode", short: "se"},
	{name: "omh:step-count", short: "sc"},
}, export.FHIRSchemas())

// withCodes fills each schema's category and codes from the export's
// table. A schema on one side only is a programming error: it panics when
// the package loads, so no test run misses it.
func withCodes(table []schemaInfo, mapped []export.FHIRSchema) []schemaInfo {
	if len(table) != len(mapped) {
		panic("fhir: the schema table and export.FHIRSchemas differ")
	}
	for i := range table {
		k := slices.IndexFunc(mapped, func(m export.FHIRSchema) bool { return m.Schema == table[i].name })
		if k < 0 {
			panic("fhir: " + table[i].name + " is not in export.FHIRSchemas")
		}
		table[i].category, table[i].codes = mapped[k].Category, mapped[k].LOINC
	}
	return table
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
