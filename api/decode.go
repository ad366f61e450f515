package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// maxJSONBody bounds the small JSON bodies of non-ingest endpoints.
const maxJSONBody = 64 << 10

// decodeJSON reads one JSON object into v, refusing unknown fields, trailing
// data and bodies over maxJSONBody.
func decodeJSON(c echo.Context, v any) *Error {
	r := http.MaxBytesReader(c.Response(), c.Request().Body, maxJSONBody)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", maxJSONBody)
		}
		return newError(http.StatusBadRequest, "malformed_json", "the body must be one JSON object with only the documented fields")
	}
	if dec.More() {
		return newError(http.StatusBadRequest, "malformed_json", "unexpected data after the JSON object")
	}
	return nil
}
