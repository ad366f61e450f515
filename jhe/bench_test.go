package jhe_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/jupyterhealth/vault/oauth"
)

// BenchmarkPatientYear: a patient-year of CGM (105,120 readings) pulled
// through /jhe/FHIR/R5/Observation with _count=1000 by a client on
// loopback, as jupyterhealth-client pages it (absolute next links).
// Target: 3 s.
//
// The client does what a client must, without encoding/json's
// reflection: it reads each page into one reused buffer, walks the
// Bundle with a streaming JSON reader (jsontext: every token of the page
// checked), takes the next link, and for every entry checks that it is an
// Observation, base64-decodes its valueAttachment.data and walks that OMH
// point with the same reader (well-formed JSON, an object with header and
// body), counting the points. It builds no DataFrame: the Python client's
// pandas work is not in this figure.
func BenchmarkPatientYear(b *testing.B) {
	f := newFixture(b, 365)
	f.grant(b, f.patient.ID, []string{"omh:blood-glucose"}, f.start, f.start.AddDate(1, 0, 0), true)
	first := f.jhe + "/FHIR/R5/Observation?patient=" + oauth.FHIRID(f.patient.ID) + "&code=" + bgCode + "&_count=1000"
	c := &yearClient{token: f.vc}
	b.ResetTimer()
	for b.Loop() {
		next, n := first, 0
		for next != "" {
			var k int
			k, next = c.page(b, next)
			n += k
		}
		if n != 105120 {
			b.Fatalf("%d readings, want 105120", n)
		}
	}
}

// yearClient is the benchmark's client: its buffers are reused from page
// to page.
type yearClient struct {
	token string
	body  bytes.Buffer
	point []byte
	dec   jsontext.Decoder
	pt    jsontext.Decoder
}

// page fetches and reads one searchset page: its points, each decoded
// and checked, and its next link.
func (c *yearClient) page(b *testing.B, u string) (points int, next string) {
	b.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	c.body.Reset()
	if resp.ContentLength > 0 {
		c.body.Grow(int(resp.ContentLength))
	}
	_, err = c.body.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b.Fatal(resp.StatusCode, c.body.String())
	}
	d := &c.dec
	d.Reset(bytes.NewReader(c.body.Bytes()))
	fail := func(what string, err error) {
		b.Helper()
		b.Fatalf("page: %s: %v", what, err)
	}
	var kind, typ string
	object(b, d, func(name string) {
		switch name {
		case "resourceType", "type":
			v, err := d.ReadToken()
			if err != nil {
				fail(name, err)
			}
			if name == "type" {
				typ = v.String()
			} else {
				kind = v.String()
			}
		case "link":
			array(b, d, func() {
				var rel, url string
				object(b, d, func(name string) {
					v, err := d.ReadToken()
					if err != nil {
						fail("link", err)
					}
					switch name {
					case "relation":
						rel = v.String()
					case "url":
						url = v.String()
					}
				})
				if rel == "next" {
					next = url
				}
			})
		case "entry":
			array(b, d, func() {
				c.entry(b, d)
				points++
			})
		default:
			if err := d.SkipValue(); err != nil {
				fail(name, err)
			}
		}
	})
	if _, err := d.ReadToken(); err == nil {
		b.Fatal("page: data after the Bundle")
	}
	if kind != "Bundle" || typ != "searchset" {
		b.Fatalf("page: a %s %s, not a searchset Bundle", kind, typ)
	}
	return points, next
}

// entry reads one entry: an Observation whose valueAttachment.data is a
// base64 OMH point, decoded and walked.
func (c *yearClient) entry(b *testing.B, d *jsontext.Decoder) {
	b.Helper()
	var kind string
	data := false
	object(b, d, func(name string) {
		if name != "resource" {
			if err := d.SkipValue(); err != nil {
				b.Fatal(err)
			}
			return
		}
		object(b, d, func(name string) {
			switch name {
			case "resourceType":
				v, err := d.ReadToken()
				if err != nil {
					b.Fatal(err)
				}
				kind = v.String()
			case "valueAttachment":
				object(b, d, func(name string) {
					if name != "data" {
						if err := d.SkipValue(); err != nil {
							b.Fatal(err)
						}
						return
					}
					v, err := d.ReadValue()
					if err != nil {
						b.Fatal(err)
					}
					// v is the quoted base64 text: no escapes in base64.
					c.point, err = base64.StdEncoding.AppendDecode(c.point[:0], v[1:len(v)-1])
					if err != nil {
						b.Fatalf("valueAttachment.data: %v", err)
					}
					c.checkPoint(b)
					data = true
				})
			default:
				if err := d.SkipValue(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	if kind != "Observation" || !data {
		b.Fatalf("entry: a %q without a point", kind)
	}
}

// checkPoint walks the decoded point: one JSON object with a header and a
// body.
func (c *yearClient) checkPoint(b *testing.B) {
	b.Helper()
	d := &c.pt
	d.Reset(bytes.NewReader(c.point))
	header, body := false, false
	object(b, d, func(name string) {
		header = header || name == "header"
		body = body || name == "body"
		if err := d.SkipValue(); err != nil {
			b.Fatalf("point: %v", err)
		}
	})
	if _, err := d.ReadToken(); err == nil {
		b.Fatal("point: data after the object")
	}
	if !header || !body {
		b.Fatalf("point without header or body: %s", c.point)
	}
}

// object reads a JSON object, calling member for each name with the
// value next to read.
func object(b *testing.B, d *jsontext.Decoder, member func(name string)) {
	b.Helper()
	if t, err := d.ReadToken(); err != nil || t.Kind() != '{' {
		b.Fatalf("want an object: %v %v", t.Kind(), err)
	}
	for d.PeekKind() != '}' {
		t, err := d.ReadToken()
		if err != nil {
			b.Fatal(err)
		}
		member(t.String())
	}
	if _, err := d.ReadToken(); err != nil {
		b.Fatal(err)
	}
}

// array reads a JSON array, calling elem for each element.
func array(b *testing.B, d *jsontext.Decoder, elem func()) {
	b.Helper()
	if t, err := d.ReadToken(); err != nil || t.Kind() != '[' {
		b.Fatalf("want an array: %v %v", t.Kind(), err)
	}
	for d.PeekKind() != ']' {
		elem()
	}
	if _, err := d.ReadToken(); err != nil {
		b.Fatal(err)
	}
}
