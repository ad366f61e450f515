// Package formats lists the import formats: each format's parser and how
// its files are recognised.
package formats

import (
	"github.com/jupyterhealth/vault/ingest/importer"
)

// entry is one format and its recogniser.
type entry struct {
	format importer.Format
	sniff  func(head []byte) bool
}

// Registry is the set of import formats. It implements api.Importers.
type Registry struct{ entries []entry }

// New returns every import format, in the order files are tried when
// recognising one.
func New() *Registry {
	return &Registry{}
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
