// Package omh is the typed Open mHealth reading model of the JupyterHealth
// Vault. It parses one OMH data point, {"header": ..., "body": ...}, checks
// it against the rules of its official JSON schema, normalises the common
// real-world deviations, and writes one canonical JSON form.
//
// # Points
//
// [Parse] turns the bytes of one data point into a [*Point]:
//
//	p, err := omh.Parse(data) // err is always an *omh.Error
//	p.Schema                  // omh:blood-glucose:4.0 (canonical, after normalisation)
//	p.Time                    // the reading's time, in the offset the point gave
//	p.Body.(*omh.BloodGlucose).BloodGlucose.Value
//	buf = p.AppendJSON(buf[:0])
//
// The reading's time is body.effective_time_frame.date_time, or the start of
// its time_interval; for an interval given as end_date_time and duration it
// is the end minus the duration (a day is 24 hours, whole months and years
// are calendar ones, fractional ones Gregorian averages). A schema that
// defines no effective_time_frame ([FiledByCreationTime]) is filed by the
// header's source_creation_date_time instead.
//
// # Schemas without a typed model
//
// Every other data-point schema of the official OMH and IEEE 1752 sets,
// embedded in the binary from ../shared/schemas (schemas/), is accepted
// too: 64 schemas, among them ieee:sleep-stage-summary:1.0,
// ieee:food-entry:0.1, omh:rr-interval:1.0, and the older versions of the
// typed schemas that no typed model reads (omh:blood-glucose:1.0 and 2.0,
// omh:blood-pressure:1.0, omh:body-temperature:1.0). Their bodies are
// validated against their official JSON schema by a maintained validator
// (santhosh-tekuri/jsonschema, offline) and kept as a [*Document]: the
// body in canonical JSON (members sorted at every level, no white space),
// stored under the id the point declares, so that nothing computes on an
// older blood-glucose as if it were 4.0. [Accepted] lists them, [Typed]
// tells the two kinds apart. A data-point schema is one whose properties
// define effective_time_frame, or one of the seven that define none:
// omh:medication-prescription, omh:patient-medication-schedule and
// omh:pharmacy-medication-dispensing (1.0 and 2.0) and ieee:survey:1.0.
// Those are filed by the header's creation time (source_creation_date_time;
// in an OMH 1.x header acquisition_provenance.source_creation_date_time,
// else creation_date_time), which such a point must carry
// (missing_time_frame otherwise); their [Document.EffectiveTimeFrame] is
// that time, their stored body is as sent. A schema that defines an
// optional effective_time_frame still requires it. The other files of the
// set are fragments (unit values, header, schema-id, data-point, enums,
// parts such as medication or survey-item), and naming one is
// unknown_schema.
//
// # Typed schemas
//
// The vault stores ten schemas, each modelled by a Go type that carries the
// schema's rules (required members, unit and value enums, value types, the
// time frame, and the utility schemas they refer to): blood-glucose 4.0
// ([BloodGlucose]), heart-rate 2.0 ([HeartRate]), step-count 3.0
// ([StepCount]), blood-pressure 4.0 ([BloodPressure]), body-weight 3.0
// ([BodyWeight]), oxygen-saturation 2.0 ([OxygenSaturation]),
// respiratory-rate 2.0 ([RespiratoryRate]), body-temperature 4.0
// ([BodyTemperature]), physical-activity 1.2 ([PhysicalActivity]) and
// sleep-episode 1.1 ([SleepEpisode]), all in the omh namespace. The schemas
// put no minimum on measured values, so neither does the vault, with one
// exception: a negative blood glucose is schema-valid but refused
// (invalid_value at body.blood_glucose.value), because no concentration is
// below zero and the vault computes statistics and the AGP on it.
//
// Members a schema does not define are allowed by the schemas (none forbids
// additional properties), so they are kept: as [Extra] values, written back
// in canonical form after the schema's members, sorted by name. Empty
// optional strings (an empty datasheet_type, say) are dropped.
//
// A test holds the models to the official schemas: over the examples and a
// generated corpus of valid and mutated points, a body is schema-valid
// exactly when Parse accepts it. The deliberate exceptions are the
// normalisations below and five refusals: a negative blood glucose
// (above), a physical-activity without effective_time_frame (the schema
// allows it; the vault files every reading by its time), an omh time_interval given as date and part_of_day (it has
// no exact time), a number beyond float64's range, and an end-and-duration
// interval whose start falls outside the years 0000 to 9999. Parse also
// refuses JSON that is not strict RFC 8259 and RFC 7493 (invalid UTF-8, a
// member name given twice), where parsers disagree about the meaning.
//
// # Headers
//
// Two header dialects are accepted, and both become one canonical IEEE 1752
// header (ieee/metadata/header-1.0):
//
//	{"uuid": ..., "schema_id": {"namespace", "name", "version"},
//	 "source_creation_date_time": ..., "modality": ..., "acquisition_rate": ...,
//	 "external_datasheets": [...], <other members, sorted>,
//	 "x_vault": {"normalised": [...], "source_id": ...}}
//
// A header with uuid or source_creation_date_time is IEEE 1752. One with
// id, creation_date_time or acquisition_provenance (and neither of those)
// is OMH 1.x (omh header-1.0 to 1.2), mapped so:
//
//	id (a UUID)                                 -> uuid, lower case
//	id (anything else)                          -> x_vault.source_id; uuid left for the vault
//	acquisition_provenance.source_creation_date_time, else creation_date_time
//	                                            -> source_creation_date_time
//	acquisition_provenance.modality             -> modality
//	acquisition_provenance.source_name          -> external_datasheets item
//	                                               {"datasheet_type": "source_name", "datasheet_reference": NAME}
//	acquisition_provenance's other members      -> kept under acquisition_provenance
//	user_id and unknown members                 -> kept as they are
//
// A header mixing the dialects is refused (invalid_header, field "header"),
// in either direction: an OMH 1.x header with modality, acquisition_rate or
// external_datasheets; an IEEE header with id, or with an
// acquisition_provenance holding source_name, source_creation_date_time or
// modality. An IEEE header keeps, as unknown members, a creation_date_time
// (JupyterHealth Exchange writes one) and an acquisition_provenance with
// only other members (the canonical form of an OMH 1.x header). In either
// dialect a missing or
// empty uuid leaves [Point.UUID] empty (the vault derives one with a keyed
// HMAC and calls [Point.SetUUID]); a uuid that is a string but not a UUID
// becomes [Point.SourceID]. A missing source_creation_date_time is set to
// the reading's time, so that the canonical header always validates once a
// uuid is set. datasheet_reference is kept verbatim although the schema
// formats it as an IRI: real headers, JupyterHealth's examples among them,
// hold a maker's name there.
//
// x_vault belongs to the vault. It appears only when there is something in
// it, and Parse reads it back, so the canonical output parses to the same
// point and the same bytes.
//
// # Normalisations
//
// Each normalisation adds a note to [Point.Notes], written to
// header.x_vault.normalised:
//
//   - Units: case variants and common spellings of an allowed unit become
//     the schema's spelling, as in `unit "MGDL" normalised to "mg/dL"`.
//     Glucose: MGDL, mg/dl, MG/DL -> mg/dL; MMOLL, mmol/l -> mmol/L. Heart
//     rate: BPM, beats per minute -> beats/min. Blood pressure: mm Hg,
//     mm[Hg], MMHG -> mmHg. Temperature: c, f, k, °C, °F, degC, degF, Cel,
//     [degF]. Respiratory rate, steps, kcal, L/min and duration units: any
//     case; "s" -> sec. Mass and length units keep their case, because "Mg"
//     (megagram) is not "mg", except for the unambiguous kg, kgs, lb, lbs,
//     oz, km, cm, in, ft, yd and mi in any case, and µg. Any other unit is a
//     bad_unit naming the allowed ones.
//   - Older versions: an older version whose body the canonical model can
//     hold is stored under the canonical one, as in `schema
//     omh:blood-glucose:3.0 stored as 4.0`. Accepted: blood-glucose 3.0,
//     heart-rate 1.0 and 1.1, step-count 1.0 and 2.0 (step_count, a bare
//     number there, is wrapped into {"value": N, "unit": "steps"}),
//     blood-pressure 2.0, 3.0 and 3.1, body-weight 1.0 and 2.0,
//     oxygen-saturation 1.0, respiratory-rate 1.0, body-temperature 2.0 and
//     3.0, physical-activity 1.0 and 1.1, sleep-episode 1.0. Such a point
//     must be valid under the version it declares and, relabelled, under
//     the canonical one. Other versions, other schemas and other namespaces
//     are unknown_schema.
//   - Headers: `header omh 1.x converted to IEEE 1752`, `header has no uuid;
//     the vault derives one`, `header id is not a UUID; kept as
//     x_vault.source_id`, `header source_creation_date_time missing; set to
//     the reading's time`, and notes for dropped schema_id members and
//     top-level members other than header and body.
//
// # Errors
//
// Every error is an [*Error] with a stable Code (the Code constants), the
// JSON path of the offending member in Field, and a Message a person can
// act on. Messages name members and allowed values but never repeat a
// submitted value, which may be health data.
//
// # Performance
//
// Parse sits on the ingest hot path. It validates the text with
// go-json-experiment/jsontext, reads it with a pooled valyala/fastjson
// parser, copies the strings it keeps into one buffer, and takes about 2 µs
// and 4 allocations for a 400-byte point; AppendJSON takes about 0.25 µs
// and none (see omh_bench_test.go). Parse is safe for concurrent use; a
// Point belongs to one goroutine at a time.
package omh
