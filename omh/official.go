package omh

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"github.com/valyala/fastjson"
)

// The official OMH and IEEE 1752 JSON schemas, copied unchanged from
// ../shared/schemas with their licences (schemas/README.md says where they
// come from). They are compiled into the binary so that validation needs no
// file and no network at run time.
//
//go:embed schemas
var officialFS embed.FS

const (
	omhBaseURL  = "https://w3id.org/openmhealth/schemas/omh/"
	ieeeBaseURL = "https://w3id.org/ieee/ieee-1752-schema/"
)

// officialSet indexes the embedded schemas: every URL a $ref may use, and
// every schema id a data point may name, with a model that validates it.
type officialSet struct {
	urls   map[string]string      // URL -> file in officialFS
	models map[SchemaID]*model    // namespace:name:version -> generic model
	latest map[[2]string]SchemaID // namespace, name -> highest version
	ids    []SchemaID             // sorted
	mu     sync.Mutex             // guards compiler and cache
	comp   *jsonschema.Compiler
	cache  map[SchemaID]*jsonschema.Schema
}

// official is built once, on first use, from the embedded files; it is
// read-only afterwards except for the compiled-schema cache, which no
// caller can observe.
var (
	officialOnce sync.Once
	officialData *officialSet
)

func official() *officialSet {
	officialOnce.Do(func() { officialData = loadOfficial() })
	return officialData
}

func loadOfficial() *officialSet {
	s := &officialSet{urls: map[string]string{}, models: map[SchemaID]*model{},
		latest: map[[2]string]SchemaID{}, cache: map[SchemaID]*jsonschema.Schema{}}
	add := func(ns, base, dir string) {
		err := fs.WalkDir(officialFS, dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || !strings.HasSuffix(p, ".json") {
				return err
			}
			b, err := officialFS.ReadFile(p)
			if err != nil {
				return err
			}
			target := p
			// A file such as unit-value-1.x.json holds only the name of
			// the file it stands for.
			if t := strings.TrimSpace(string(b)); !strings.HasPrefix(t, "{") {
				target = path.Join(path.Dir(p), t)
				if b, err = officialFS.ReadFile(target); err != nil {
					return err
				}
			}
			file := path.Base(p)
			s.urls[base+file] = target
			var head struct {
				ID         string                     `json:"$id"`
				Properties map[string]json.RawMessage `json:"properties"`
				AllOf      []struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"allOf"`
			}
			if err := json.Unmarshal(b, &head); err != nil {
				return err
			}
			if _, dup := s.urls[head.ID]; head.ID != "" && !dup {
				s.urls[head.ID] = target
			}
			if target != p {
				return nil // 1.x stands for a version, it is not one
			}
			stem := strings.TrimSuffix(file, ".json")
			i := strings.LastIndexByte(stem, '-')
			if i <= 0 {
				return nil
			}
			id := SchemaID{ns, stem[:i], stem[i+1:]}
			untimed := untimedBodies[[2]string{ns, id.Name}]
			if !untimed && !hasTimeFrame(head.Properties) && !slices.ContainsFunc(head.AllOf, func(a struct {
				Properties map[string]json.RawMessage `json:"properties"`
			}) bool {
				return hasTimeFrame(a.Properties)
			}) {
				return nil // a fragment (unit-value, header...), not a data-point body
			}
			if m := lookupModel(id.Namespace, id.Name); m != nil && (m.id.Version == id.Version || m.legacyVersion(id.Version) != nil) {
				return nil // the typed model reads this version
			}
			s.models[id] = &model{id: id, parse: func(d *decoder, o *fastjson.Object, _ *legacy) (Body, *Error) {
				return d.document(id, o, untimed)
			}}
			k := [2]string{ns, id.Name}
			if cur, ok := s.latest[k]; !ok || versionLess(cur.Version, id.Version) {
				s.latest[k] = id
			}
			s.ids = append(s.ids, id)
			return nil
		})
		if err != nil {
			// The files are part of the binary: this is a build defect.
			panic("omh: embedded schemas: " + err.Error())
		}
	}
	add(omhNamespace, omhBaseURL, "schemas/omh")
	add("ieee", ieeeBaseURL, "schemas/ieee")
	slices.SortFunc(s.ids, func(a, b SchemaID) int { return strings.Compare(a.String(), b.String()) })
	s.comp = jsonschema.NewCompiler()
	s.comp.UseLoader(embeddedLoader(s.urls))
	s.comp.AssertFormat()
	// datasheet_reference is formatted "iri", but real headers hold a
	// maker's name there; see the package documentation.
	s.comp.RegisterFormat(&jsonschema.Format{Name: "iri", Validate: func(any) error { return nil }})
	return s
}

// untimedBodies are the data-point schemas of the two sets whose bodies
// define no effective_time_frame (every version of each name). Their shape
// does not tell them from a fragment (pharmacy-medication-dispensing refers
// to medication-prescription as a body would to a unit value), so they are
// named: the vault files each of their readings by the header's creation
// time instead (see [FiledByCreationTime]). Every other file without
// effective_time_frame is a fragment: a unit value, an enum, the header,
// or a part of one of these (medication, survey-item, survey-answer...).
var untimedBodies = map[[2]string]bool{
	{omhNamespace, "medication-prescription"}:        true,
	{omhNamespace, "patient-medication-schedule"}:    true,
	{omhNamespace, "pharmacy-medication-dispensing"}: true,
	{"ieee", "survey"}:                               true,
}

// FiledByCreationTime reports whether the vault files readings of schema id
// by the header's source_creation_date_time (an OMH 1.x header's
// creation_date_time, or its acquisition_provenance.source_creation_date_time
// when given) because the schema defines no effective_time_frame:
// omh:medication-prescription, omh:patient-medication-schedule,
// omh:pharmacy-medication-dispensing (1.0 and 2.0) and ieee:survey:1.0.
// Such a point must carry that header time.
func FiledByCreationTime(id SchemaID) bool {
	return untimedBodies[[2]string{id.Namespace, id.Name}] && genericModel(id) != nil
}

// hasTimeFrame reports whether a schema's properties define
// effective_time_frame: the mark of a data-point body, which the vault
// files by its time.
func hasTimeFrame(props map[string]json.RawMessage) bool {
	_, ok := props["effective_time_frame"]
	return ok
}

// versionLess compares dotted versions numerically (0.1 < 1.0 < 1.10).
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// embeddedLoader serves the embedded files by URL and refuses every other
// URL, so validation never touches the network.
type embeddedLoader map[string]string

func (l embeddedLoader) Load(url string) (any, error) {
	file, ok := l[url]
	if !ok {
		return nil, errors.New("schema " + url + " is not embedded in the vault")
	}
	b, err := officialFS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// compiled returns the official schema of a generic model, compiled once.
func (s *officialSet) compiled(id SchemaID) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[id]; ok {
		return c, nil
	}
	base := omhBaseURL
	if id.Namespace != omhNamespace {
		base = ieeeBaseURL
	}
	c, err := s.comp.Compile(base + id.Name + "-" + id.Version + ".json")
	if err != nil {
		return nil, err
	}
	s.cache[id] = c
	return c, nil
}

// genericModel returns the model of a schema the vault stores without a
// typed model, or nil.
func genericModel(id SchemaID) *model { return official().models[id] }

// Accepted returns every schema the vault stores: the canonical schemas of
// [Supported] first, then every other schema of the embedded OMH and IEEE
// 1752 sets, sorted. The slice is a fresh copy.
func Accepted() []SchemaID {
	return append(Supported(), official().ids...)
}

// Typed reports whether the vault has a typed model (a Go body type other
// than [*Document]) for the canonical schema id.
func Typed(id SchemaID) bool {
	m := lookupModel(id.Namespace, id.Name)
	return m != nil && m.id == id
}

// schemaError turns a validation failure into an *Error naming the member
// and the rule, never the submitted value.
func schemaError(id SchemaID, err error) *Error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return errf(CodeInvalidValue, "body", "body does not match "+id.String())
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	field := "body"
	for _, p := range ve.InstanceLocation {
		if _, err := strconv.Atoi(p); err == nil {
			field += "[" + p + "]"
			continue
		}
		field = join(field, p)
	}
	rule := " (schema " + id.String() + ")"
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		field = join(field, k.Missing[0])
		return errf(CodeInvalidValue, field, lastName(field)+" is required"+rule)
	case *kind.Type:
		return errType(field, strings.Join(k.Want, " or ")+rule)
	case *kind.Enum:
		allowed := make([]string, 0, len(k.Want))
		for _, w := range k.Want {
			b, _ := json.Marshal(w)
			allowed = append(allowed, string(b))
		}
		return errf(CodeInvalidValue, field, lastName(field)+" must be one of "+strings.Join(allowed, ", ")+rule)
	case *kind.Format:
		return errf(CodeInvalidValue, field, lastName(field)+" must be a valid "+k.Want+rule)
	}
	kw := "schema"
	if p := ve.ErrorKind.KeywordPath(); len(p) > 0 {
		kw = p[len(p)-1]
	}
	return errf(CodeInvalidValue, field, lastName(field)+" breaks the schema's "+strconv.Quote(kw)+" rule"+rule)
}
