package omh

import (
	"bytes"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/valyala/fastjson"
)

// Document is the body of a point whose schema the vault stores without a
// typed model: any schema of the embedded OMH and IEEE 1752 sets other
// than the ten typed ones (such as ieee:sleep-stage-summary:1.0 or
// omh:blood-glucose:2.0). Parse validates it against its official JSON
// schema and keeps it in canonical JSON (members sorted by name at every
// level, no white space), so it round-trips byte for byte.
type Document struct {
	// ID is the schema the point declared, stored as it is.
	ID SchemaID
	// EffectiveTimeFrame is the body's effective_time_frame, which the
	// vault requires of every schema that defines one: it files each
	// reading by its time. For a schema that defines none (see
	// [FiledByCreationTime]) it is the header's source_creation_date_time
	// as a date_time; the stored body is left as it was sent.
	EffectiveTimeFrame TimeFrame
	json               []byte
}

// Schema returns the schema the point declared.
func (b *Document) Schema() SchemaID { return b.ID }

// TimeFrame returns the effective_time_frame.
func (b *Document) TimeFrame() TimeFrame { return b.EffectiveTimeFrame }

// JSON returns the body in canonical JSON. The slice is shared with the
// document; do not modify it.
func (b *Document) JSON() []byte { return b.json }

func (b *Document) appendJSON(dst []byte) []byte { return append(dst, b.json...) }

// document validates a body against the official schema id and keeps it
// in canonical form. The time frame is read with the typed models' rules,
// so that every stored reading has an exact time; an untimed schema's
// reading takes the header's creation time (d.created) instead.
func (d *decoder) document(id SchemaID, o *fastjson.Object, untimed bool) (Body, *Error) {
	sch, err := official().compiled(id)
	if err != nil {
		return nil, errf(CodeUnknownSchema, "header.schema_id", "the vault cannot compile the official schema of "+id.String())
	}
	raw := o.MarshalTo(nil)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, errf(CodeMalformedJSON, "body", "body is not valid JSON")
	}
	if err := sch.Validate(inst); err != nil {
		return nil, schemaError(id, err)
	}
	if untimed {
		if d.created.IsZero() {
			return nil, errf(CodeMissingTimeFrame, d.createdField, lastName(d.createdField)+" is required: "+id.String()+" defines no effective_time_frame, so the vault files the reading by the header's creation time")
		}
		d.start = d.created.Time
		return &Document{ID: id, EffectiveTimeFrame: TimeFrame{DateTime: d.created}, json: appendCanonicalObject(nil, o)}, nil
	}
	tf, e := d.timeFrame(o.Get("effective_time_frame"), id.Name, timeFrameRules{omh: id.Namespace == omhNamespace})
	if e != nil {
		return nil, e
	}
	return &Document{ID: id, EffectiveTimeFrame: tf, json: appendCanonicalObject(nil, o)}, nil
}
