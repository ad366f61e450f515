package fhir

import (
	"crypto/sha256"
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
// Observations can carry. A schema without a typed model has neither: its
// Observations are the export's generic form, coded with the schema id
// alone (https://w3id.org/openmhealth|ieee:food-entry:0.1).
type schemaInfo struct {
	name     string // namespace:name as grants and scopes write it; namespace:name:version without a typed model
	short    string // in Observation ids: two letters, or x and four for a schema without a typed model
	typed    bool
	storedID string // the canonical schema id readings are stored under
	category string
	codes    []string
}

// schemaTable is every schema the API serves: the typed schemas the
// export maps, each with its short code, then every schema the vault
// stores without a typed model (omh.Accepted), sorted by id. Its order is
// the order of a search's sources and of cursor positions; a cursor also
// holds its schema's short code, so one sealed before the table changed
// (a newer embedded schema set) is refused rather than misread.
var schemaTable = append(withCodes([]schemaInfo{
	{name: "omh:blood-glucose", short: "bg"},
	{name: "omh:blood-pressure", short: "bp"},
	{name: "omh:body-temperature", short: "bt"},
	{name: "omh:body-weight", short: "bw"},
	{name: "omh:heart-rate", short: "hr"},
	{name: "omh:oxygen-saturation", short: "os"},
	{name: "omh:respiratory-rate", short: "rr"},
	{name: "omh:sleep-episode", short: "se"},
	{name: "omh:step-count", short: "sc"},
}, export.FHIRSchemas()), untypedSchemas(omh.Accepted())...)

// untypedSchemas is the table's part for the accepted schemas without a
// typed model. A short code is x and the first four letters of the
// SHA-256 of the schema id (base 32, the tags' alphabet), so an
// Observation id stays the same whatever else the table holds; two that
// collide are a programming error and panic when the package loads.
func untypedSchemas(accepted []omh.SchemaID) []schemaInfo {
	var out []schemaInfo
	seen := map[string]string{}
	for _, id := range accepted {
		if omh.Typed(id) {
			continue
		}
		sum := sha256.Sum256([]byte(id.String()))
		short := "x" + tagEncoding.EncodeToString(sum[:])[:4]
		if other, dup := seen[short]; dup {
			panic("fhir: " + id.String() + " and " + other + " have the same short code")
		}
		seen[short] = id.String()
		out = append(out, schemaInfo{name: id.String(), short: short, storedID: id.String()})
	}
	return out
}

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
		table[i].typed = true
		id, err := omh.ParseSchemaID(table[i].name)
		if err != nil {
			panic("fhir: " + err.Error())
		}
		c, ok := omh.CanonicalSchema(id)
		if !ok || !omh.Typed(c) {
			panic("fhir: " + table[i].name + " has no typed model")
		}
		table[i].storedID = c.String()
	}
	return table
}

// stored is the canonical schema id readings are stored under.
func (s schemaInfo) stored() string { return s.storedID }

func schemaByName(name string) int {
	return slices.IndexFunc(schemaTable, func(s schemaInfo) bool { return s.name == name })
}

func schemaByShort(short string) int {
	return slices.IndexFunc(schemaTable, func(s schemaInfo) bool { return s.short == short })
}

func schemaByStored(id string) int {
	return slices.IndexFunc(schemaTable, func(s schemaInfo) bool { return s.storedID == id })
}
