package omh

import (
	"strings"

	"github.com/valyala/fastjson"
)

// SchemaID identifies a schema as namespace:name:version, such as
// omh:blood-glucose:4.0. In a grant the version may be empty, and then the
// id covers every version.
type SchemaID struct{ Namespace, Name, Version string }

// String returns "namespace:name:version", or "namespace:name" when Version
// is empty.
func (s SchemaID) String() string {
	if s.Version == "" {
		return s.Namespace + ":" + s.Name
	}
	return s.Namespace + ":" + s.Name + ":" + s.Version
}

// ParseSchemaID parses "namespace:name:version", or "namespace:name" (with
// an empty Version, as grants write it). It checks the syntax only; use
// [CanonicalSchema] to ask whether the vault stores the schema. Each part
// must be non-empty and free of spaces and control characters. The error is
// an *Error with code invalid_value.
func ParseSchemaID(s string) (SchemaID, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return SchemaID{}, errf(CodeInvalidValue, "schema_id", "schema id must be written namespace:name:version or namespace:name, such as omh:blood-glucose:4.0")
	}
	for _, p := range parts {
		if p == "" || strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return SchemaID{}, errf(CodeInvalidValue, "schema_id", "schema id must be written namespace:name:version or namespace:name with no empty part and no spaces, such as omh:blood-glucose:4.0")
		}
	}
	id := SchemaID{Namespace: parts[0], Name: parts[1]}
	if len(parts) == 3 {
		id.Version = parts[2]
	}
	return id, nil
}

// Supported returns the canonical schemas the vault stores, in a stable
// order. The slice is a fresh copy.
func Supported() []SchemaID {
	out := make([]SchemaID, len(models))
	for i := range models {
		out[i] = models[i].id
	}
	return out
}

// CanonicalSchema maps a schema id the vault accepts to the id it stores it
// under: omh:blood-glucose:3.0 -> omh:blood-glucose:4.0. An id without a
// version maps to the canonical version of a typed schema, or to the
// highest embedded version of any other. A schema without a typed model
// ([Document]) is stored under the id it declares. ok is false for a schema
// the vault does not accept.
func CanonicalSchema(id SchemaID) (canonical SchemaID, ok bool) {
	m := lookupModel(id.Namespace, id.Name)
	if m != nil && (id.Version == "" || id.Version == m.id.Version || m.legacyVersion(id.Version) != nil) {
		return m.id, true
	}
	if id.Version == "" {
		latest, ok := official().latest[[2]string{id.Namespace, id.Name}]
		return latest, ok
	}
	if genericModel(id) != nil {
		return id, true
	}
	return SchemaID{}, false
}

// AcceptedVersions returns every version of the named schema that Parse
// accepts, canonical first, or nil for an unknown schema.
func AcceptedVersions(namespace, name string) []string {
	m := lookupModel(namespace, name)
	if m == nil {
		return nil
	}
	vs := []string{m.id.Version}
	for _, l := range m.legacy {
		vs = append(vs, l.version)
	}
	return vs
}

// model ties a canonical schema to the Go type that carries its rules.
type model struct {
	id     SchemaID
	legacy []legacy
	// parse validates and normalises a body object. lg is nil for the
	// canonical version.
	parse func(d *decoder, o *fastjson.Object, lg *legacy) (Body, *Error)
}

// legacy is an older version of a schema whose bodies the canonical model
// can hold. A legacy point is accepted when its body is valid under the
// schema it declares and, once relabelled, under the canonical one.
type legacy struct {
	version string
	// stringMembers are members the old schema types as strings and the
	// canonical one no longer mentions (user_notes): the old rule still
	// applies, and the member is then kept verbatim as an extra.
	stringMembers []string
	// bareStepCount: step_count is a plain number, wrapped into
	// {"value": N, "unit": "steps"}.
	bareStepCount bool
}

func (m *model) legacyVersion(v string) *legacy {
	for i := range m.legacy {
		if m.legacy[i].version == v {
			return &m.legacy[i]
		}
	}
	return nil
}

const omhNamespace = "omh"

// CodeSystem is the FHIR coding system of Open mHealth schema ids, as
// JupyterHealth Exchange codes its Observations: the code is the schema id
// itself, such as omh:blood-glucose:4.0 or ieee:food-entry:0.1.
const CodeSystem = "https://w3id.org/openmhealth"

// The canonical schema ids.
var (
	idBloodGlucose     = SchemaID{omhNamespace, "blood-glucose", "4.0"}
	idHeartRate        = SchemaID{omhNamespace, "heart-rate", "2.0"}
	idStepCount        = SchemaID{omhNamespace, "step-count", "3.0"}
	idBloodPressure    = SchemaID{omhNamespace, "blood-pressure", "4.0"}
	idBodyWeight       = SchemaID{omhNamespace, "body-weight", "3.0"}
	idOxygenSaturation = SchemaID{omhNamespace, "oxygen-saturation", "2.0"}
	idRespiratoryRate  = SchemaID{omhNamespace, "respiratory-rate", "2.0"}
	idBodyTemperature  = SchemaID{omhNamespace, "body-temperature", "4.0"}
	idPhysicalActivity = SchemaID{omhNamespace, "physical-activity", "1.2"}
	idSleepEpisode     = SchemaID{omhNamespace, "sleep-episode", "1.1"}
)

// models lists the ten canonical schemas in Supported order. Legacy
// versions are those whose body schema differs from the canonical one only
// by equivalent utility schemas, by effective_time_frame becoming required,
// by members the canonical version adds, and by the rules in legacy.
var models = [...]model{
	{id: idBloodGlucose, parse: parseBloodGlucose,
		legacy: []legacy{{version: "3.0"}}},
	{id: idHeartRate, parse: parseHeartRate,
		legacy: []legacy{{version: "1.0", stringMembers: []string{"user_notes"}}, {version: "1.1", stringMembers: []string{"user_notes"}}}},
	{id: idStepCount, parse: parseStepCount,
		legacy: []legacy{{version: "1.0", bareStepCount: true}, {version: "2.0", bareStepCount: true}}},
	{id: idBloodPressure, parse: parseBloodPressure,
		legacy: []legacy{{version: "2.0", stringMembers: []string{"user_notes"}}, {version: "3.0"}, {version: "3.1"}}},
	{id: idBodyWeight, parse: parseBodyWeight,
		legacy: []legacy{{version: "1.0"}, {version: "2.0"}}},
	{id: idOxygenSaturation, parse: parseOxygenSaturation,
		legacy: []legacy{{version: "1.0"}}},
	{id: idRespiratoryRate, parse: parseRespiratoryRate,
		legacy: []legacy{{version: "1.0"}}},
	{id: idBodyTemperature, parse: parseBodyTemperature,
		legacy: []legacy{{version: "2.0"}, {version: "3.0"}}},
	{id: idPhysicalActivity, parse: parsePhysicalActivity,
		legacy: []legacy{{version: "1.0"}, {version: "1.1"}}},
	{id: idSleepEpisode, parse: parseSleepEpisode,
		legacy: []legacy{{version: "1.0"}}},
}

func lookupModel(namespace, name string) *model {
	if namespace != omhNamespace {
		return nil
	}
	for i := range models {
		if models[i].id.Name == name {
			return &models[i]
		}
	}
	return nil
}
