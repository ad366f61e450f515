// Package formats lists the import formats: each format's parser and how
// its files are recognised.
package formats

import (
	"io"

	"github.com/jupyterhealth/vault/ingest"
	"github.com/jupyterhealth/vault/ingest/apple"
	"github.com/jupyterhealth/vault/ingest/cgmcsv"
	"github.com/jupyterhealth/vault/ingest/fhirobs"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/ingest/nightscout"
	"github.com/jupyterhealth/vault/ingest/omhjson"
)

// entry is one format and its recogniser.
type entry struct {
	format importer.Format
	sniff  func(head []byte) bool
}

// Registry is the set of import formats. It implements api.Importers.
type Registry struct{ entries []entry }

// New returns every import format, in the order files are tried when
// recognising one: the most specific signatures first.
func New() *Registry {
	return &Registry{entries: []entry{
		{importer.Format{Name: ingest.FormatApple, Parse: apple.Parse, ParseAt: apple.ParseZip}, apple.Sniff},
		{importer.Format{Name: ingest.FormatDexcom, Parse: cgmcsv.ParseDexcom}, cgmcsv.SniffDexcom},
		{importer.Format{Name: ingest.FormatLibre, Parse: parseLibre}, cgmcsv.SniffLibre},
		{importer.Format{Name: ingest.FormatFHIR, Parse: fhirobs.Parse}, fhirobs.Sniff},
		{importer.Format{Name: ingest.FormatNightscout, Parse: nightscout.Parse}, nightscout.Sniff},
		{importer.Format{Name: ingest.FormatOMH, Parse: omhjson.Parse}, omhjson.Sniff},
	}}
}

// parseLibre reads LibreView's CSV in the date order the options name.
func parseLibre(r io.Reader, o ingest.Options, sink ingest.Sink) error {
	order := cgmcsv.DateOrderAuto
	switch o.DateOrder {
	case ingest.DateMonthFirst:
		order = cgmcsv.MonthFirst
	case ingest.DateDayFirst:
		order = cgmcsv.DayFirst
	}
	return cgmcsv.ParseLibreDateOrder(r, o, order, sink)
}

// Lookup returns a format by name.
func (r *Registry) Lookup(name string) (importer.Format, bool) {
	for _, e := range r.entries {
		if e.format.Name == name {
			return e.format, true
		}
	}
	return importer.Format{}, false
}

// Sniff recognises a format from the first bytes of a file.
func (r *Registry) Sniff(head []byte) (importer.Format, bool) {
	for _, e := range r.entries {
		if e.sniff != nil && e.sniff(head) {
			return e.format, true
		}
	}
	return importer.Format{}, false
}

// Names lists the format names.
func (r *Registry) Names() []string {
	var out []string
	for _, e := range r.entries {
		out = append(out, e.format.Name)
	}
	return out
}
