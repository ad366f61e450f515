package omh

// Stable error codes. Clients and other packages match on these; never
// change their spelling.
const (
	// CodeMalformedJSON: the bytes are not one well-formed JSON text (syntax
	// error, invalid UTF-8, a repeated member name, nesting deeper than 300).
	CodeMalformedJSON = "malformed_json"
	// CodeUnknownSchema: header.schema_id names a schema or version the vault
	// does not model.
	CodeUnknownSchema = "unknown_schema"
	// CodeMissingTimeFrame: the body has no effective_time_frame, or it holds
	// neither date_time nor time_interval. The vault needs a reading's time.
	CodeMissingTimeFrame = "missing_time_frame"
	// CodeBadUnit: a unit is not one the schema allows (and is not a known
	// spelling of one).
	CodeBadUnit = "bad_unit"
	// CodeInvalidHeader: the header is missing, not an object, or one of its
	// members is malformed.
	CodeInvalidHeader = "invalid_header"
	// CodeInvalidValue: a required field is missing, a value has the wrong
	// type, is out of range, or is not one of an enumeration's values.
	CodeInvalidValue = "invalid_value"
	// CodeInvalidTime: a date-time is not RFC 3339 with an offset, or a time
	// frame cannot be placed on the time line.
	CodeInvalidTime = "invalid_time"
)

// Error is a validation failure. Code is one of the Code constants, Field a
// JSON path such as "body.blood_glucose.unit" ("" when the failure is about
// the whole point), and Message a sentence a person can act on.
//
// Messages name fields and allowed values but never repeat a submitted
// value: values are health data and must not reach logs.
type Error struct {
	Code    string
	Field   string
	Message string
}

// Error returns "code: field: message", or "code: message" without a field.
func (e *Error) Error() string {
	if e.Field == "" {
		return e.Code + ": " + e.Message
	}
	return e.Code + ": " + e.Field + ": " + e.Message
}

func errf(code, field, msg string) *Error {
	return &Error{Code: code, Field: field, Message: msg}
}

// Helpers for the common shapes of failure. field is the full path of the
// offending member; every message starts with the member's own name so that
// it reads well without the path, too.

func errRequired(field string) *Error {
	return errf(CodeInvalidValue, field, lastName(field)+" is required")
}

func errType(field, want string) *Error {
	return errf(CodeInvalidValue, field, lastName(field)+" must be "+want)
}

func errEnum(field string, allowed []string) *Error {
	return errf(CodeInvalidValue, field, lastName(field)+" must be one of "+quoteList(allowed))
}

func errUnit(field string, allowed []string) *Error {
	return errf(CodeBadUnit, field, lastName(field)+" must be one of "+quoteList(allowed))
}

func errDateTime(field string) *Error {
	return errf(CodeInvalidTime, field, lastName(field)+" must be an RFC 3339 date-time with an offset, such as 2025-01-31T08:15:00-08:00")
}

// lastName returns the last member name of a dotted path
// ("body.blood_glucose.unit" -> "unit", "header.external_datasheets[0]" ->
// "external_datasheets[0]").
func lastName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' {
			return path[i+1:]
		}
	}
	return path
}

func quoteList(vs []string) string {
	var b []byte
	for i, v := range vs {
		if i > 0 {
			if i == len(vs)-1 {
				b = append(b, " or "...)
			} else {
				b = append(b, ", "...)
			}
		}
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	return string(b)
}
