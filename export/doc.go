// Package export streams a patient's readings out of the vault: a manifest
// line, the data lines, and a signed trailer, age-encrypted to one of the
// clinician's registered recipients (see docs/export.md).
//
// # Formats
//
// The data lines come from an [Encoder], one per export, chosen by
// [NewEncoder]:
//
//   - "omh" (the default): each reading's canonical Open mHealth point, as
//     the vault stores it, one per line. The encoder copies the bytes and
//     does not parse them.
//   - "fhir": one FHIR R4 Observation per line (Bulk Data NDJSON, no
//     Bundle), coded with LOINC and UCUM, claiming the R4 vital signs
//     profiles and the HL7 CGM IG's sensor reading profiles where the
//     reading fits them. omh:physical-activity has no FHIR form:
//     [Supports] says so before an export starts, and AppendRecord refuses
//     such a reading with an error wrapping [ErrUnsupported].
//   - "csv": RFC 4180 CSV (encoding/csv, LF line ends) with the header row
//     uuid,schema,time,end_time,value,unit,value2,unit2,source, one row per
//     reading. The header is a data line (covered by the trailer's hash)
//     but not a record (not counted in the trailer's records).
//
// Every record is exactly one line ending in '\n', so the trailer's count of
// data lines is the number of records plus the CSV header. Values keep the
// digits of the stored point (the omh package writes each number as the
// shortest decimal that reads back to the same float64, and the encoders
// write them the same way). docs/export.md (Formats) has the full mapping:
// every LOINC and UCUM code, the CGM rule, the CSV columns per schema, and
// the CSV formula-injection guard.
package export
