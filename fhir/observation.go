package fhir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/export"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/oauth"
	"github.com/jupyterhealth/vault/vault"
)

// An Observation's id names its reading exactly: the patient's id without
// its prefix, the schema's short code, the time (nanoseconds since 1900,
// base 36) and the dedup tag (base 32): pt_abc's heart rate at t is
// abc-hr-<t>-<tag>, at most 64 characters of [a-z0-9-], an R4 id.
var tagEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// key is a reading's place in a search's order: time, schema, tag.
type key struct {
	t      int64 // Unix nanoseconds
	schema int
	tag    [keys.TagSize]byte
}

func (a key) cmp(b key) int {
	switch {
	case a.t != b.t:
		if a.t < b.t {
			return -1
		}
		return 1
	case a.schema != b.schema:
		return a.schema - b.schema
	}
	return bytes.Compare(a.tag[:], b.tag[:])
}

func obsID(patient string, k key) string {
	return strings.TrimPrefix(patient, "pt_") + "-" + schemaTable[k.schema].short + "-" +
		strconv.FormatUint(uint64(k.t-vault.MinTime.UnixNano()), 36) + "-" + tagEncoding.EncodeToString(k.tag[:])
}

func parseObsID(id string) (patient string, k key, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) != 4 {
		return "", k, false
	}
	if patient = vaultID("pt-"+parts[0], "patient"); patient == "" {
		return "", k, false
	}
	if k.schema = schemaByShort(parts[1]); k.schema < 0 {
		return "", k, false
	}
	n, err := strconv.ParseUint(parts[2], 36, 64)
	if err != nil || n > uint64(vault.MaxTime.UnixNano()-vault.MinTime.UnixNano()) {
		return "", k, false
	}
	k.t = int64(n) + vault.MinTime.UnixNano()
	tag, err := tagEncoding.DecodeString(parts[3])
	if err != nil || len(tag) != keys.TagSize {
		return "", k, false
	}
	copy(k.tag[:], tag)
	return patient, k, true
}

// cursor is where the next page starts: after last, in the search's
// order. It is sealed (the master keyset's AEAD), so a client can neither
// read nor forge one, and bound to the sign-in (token family) and the
// search it came from.
type cursor struct {
	Family  string    `json:"f"`
	Query   []byte    `json:"q"` // SHA-256 of the search's parameters
	Desc    bool      `json:"d,omitempty"`
	T       int64     `json:"t"`
	Schema  int       `json:"s"`
	Short   string    `json:"c"` // the schema's short code (schemaTable's order may change between versions)
	Tag     []byte    `json:"g"`
	Expires time.Time `json:"e"`
}

const (
	cursorAD   = "jhvault/fhir-cursor/v1"
	cursorLife = 24 * time.Hour
)

// queryDigest hashes the search's parameters, _cursor left out.
func queryDigest(q url.Values) []byte {
	c := url.Values{}
	for k, v := range q {
		if k != "_cursor" {
			c[k] = v
		}
	}
	sum := sha256.Sum256([]byte(c.Encode()))
	return sum[:]
}

func (s *Server) sealCursor(c cursor) (string, error) {
	c.Short = schemaTable[c.Schema].short
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	ct, err := s.sealer.Encrypt(b, []byte(cursorAD))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(ct), nil
}

var errBadCursor = refuse(http.StatusBadRequest, "invalid", "bad_cursor", "the paging cursor is not valid for this search and sign-in, or has expired; start the search again")

func (s *Server) openCursor(raw string, t oauth.AccessToken, q url.Values, desc bool) (*key, error) {
	if raw == "" {
		return nil, nil
	}
	ct, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(ct) > 1024 {
		return nil, errBadCursor
	}
	b, err := s.sealer.Decrypt(ct, []byte(cursorAD))
	if err != nil {
		return nil, errBadCursor
	}
	var c cursor
	if json.Unmarshal(b, &c) != nil || c.Family != t.Family || !bytes.Equal(c.Query, queryDigest(q)) || c.Desc != desc ||
		!s.now().Before(c.Expires) || c.Schema < 0 || c.Schema >= len(schemaTable) || schemaTable[c.Schema].short != c.Short || len(c.Tag) != keys.TagSize {
		return nil, errBadCursor
	}
	k := key{t: c.T, schema: c.Schema}
	copy(k.tag[:], c.Tag)
	return &k, nil
}

// item is one reading of a merged search.
type item struct {
	k    key
	json []byte
}

// errUnreadable is the answer when the readings could not be read.
func errUnreadable(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "unavailable", Message: "the readings could not be read; retry later", Cause: cause}
}

// sources are the permit's schemas' sources, leaving out those the
// patient has no readings of (Records.Schemas): an unfiltered search
// covers about a hundred schemas, and an empty one otherwise costs a read
// per chunk of its window.
func (s *Server) sources(ctx context.Context, patient string, p permit, after *key, desc bool) ([]iter.Seq2[item, error], error) {
	have, err := s.records.Schemas(ctx, patient)
	if err != nil {
		return nil, err
	}
	var srcs []iter.Seq2[item, error]
	for _, i := range p.schemas() {
		if slices.Contains(have, schemaTable[i].stored()) {
			srcs = append(srcs, s.source(ctx, patient, i, p.windows[i], after, desc))
		}
	}
	return srcs, nil
}

// source yields one schema's readings in its windows, in the search's
// order, strictly after the cursor.
func (s *Server) source(ctx context.Context, patient string, schema int, ws []consent.Window, after *key, desc bool) iter.Seq2[item, error] {
	stored := schemaTable[schema].stored()
	keep := func(k key) bool {
		if after == nil {
			return true
		}
		if desc {
			return k.cmp(*after) < 0
		}
		return k.cmp(*after) > 0
	}
	return func(yield func(item, error) bool) {
		if !desc {
			// Oldest first, in chunks that double while they come back
			// short: the store decrypts ahead of its reader, so one read
			// to the window's end would decrypt far more than a page.
			for _, w := range ws {
				from, to := w.From, w.To
				if from.IsZero() {
					from = vault.MinTime
				}
				if to.IsZero() {
					to = vault.MaxTime
				}
				if after != nil {
					if at := time.Unix(0, after.t).UTC(); at.After(from) {
						from = at
					}
				}
				span := 6 * time.Hour
				for from.Before(to) {
					hi := to
					if to.Sub(from) > span {
						hi = from.Add(span)
					}
					n := 0
					for r, err := range s.records.Readings(ctx, patient, stored, from, hi) {
						if err != nil {
							yield(item{}, err)
							return
						}
						n++
						k := key{t: r.Time.UnixNano(), schema: schema, tag: r.Tag}
						if keep(k) && !yield(item{k, r.JSON}, nil) {
							return
						}
					}
					from = hi
					if n < 256 && span < 100*365*24*time.Hour {
						span *= 2
					}
				}
			}
			return
		}
		// Newest first: the store reads forwards, so read backwards in
		// chunks that double while they come back short.
		for i := len(ws) - 1; i >= 0; i-- {
			w := ws[i]
			lo := w.From
			if lo.IsZero() {
				lo = vault.MinTime
			}
			hi := w.To
			if hi.IsZero() {
				hi = vault.MaxTime
			}
			if after != nil {
				if at := time.Unix(0, after.t+1).UTC(); at.Before(hi) {
					hi = at
				}
			}
			span := 6 * time.Hour
			for hi.After(lo) {
				from := hi.Add(-span)
				if from.Before(lo) {
					from = lo
				}
				var chunk []item
				for r, err := range s.records.Readings(ctx, patient, stored, from, hi) {
					if err != nil {
						yield(item{}, err)
						return
					}
					k := key{t: r.Time.UnixNano(), schema: schema, tag: r.Tag}
					if keep(k) {
						chunk = append(chunk, item{k, r.JSON})
					}
				}
				for j := len(chunk) - 1; j >= 0; j-- {
					if !yield(chunk[j], nil) {
						return
					}
				}
				hi = from
				if len(chunk) < 256 && span < 100*365*24*time.Hour {
					span *= 2
				}
			}
		}
	}
}

// merge yields the sources' readings in the search's order.
func merge(srcs []iter.Seq2[item, error], desc bool) iter.Seq2[item, error] {
	return func(yield func(item, error) bool) {
		type head struct {
			next func() (item, error, bool)
			stop func()
			cur  item
			ok   bool
		}
		heads := make([]*head, 0, len(srcs))
		defer func() {
			for _, h := range heads {
				h.stop()
			}
		}()
		for _, src := range srcs {
			next, stop := iter.Pull2(src)
			h := &head{next: next, stop: stop}
			heads = append(heads, h)
			it, err, ok := next()
			if err != nil {
				yield(item{}, err)
				return
			}
			h.cur, h.ok = it, ok
		}
		for {
			var best *head
			for _, h := range heads {
				if !h.ok {
					continue
				}
				if best == nil || (!desc && h.cur.k.cmp(best.cur.k) < 0) || (desc && h.cur.k.cmp(best.cur.k) > 0) {
					best = h
				}
			}
			if best == nil {
				return
			}
			if !yield(best.cur, nil) {
				return
			}
			it, err, ok := best.next()
			if err != nil {
				yield(item{}, err)
				return
			}
			best.cur, best.ok = it, ok
		}
	}
}

// searchObservations is GET /fhir/Observation: one page of a searchset.
func (s *Server) searchObservations(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	o, err := parseObsQuery(q, "")
	if err != nil {
		return err
	}
	if o.patient == "" {
		if t.Context != "patient" {
			return badParam("name the patient: Observation?patient=ID (Patient?_count=… lists the patients who granted you)")
		}
		o.patient = t.UserID
	}
	after, err := s.openCursor(o.cursor, t, q, o.desc)
	if err != nil {
		return err
	}
	if len(o.schemas) == 0 || emptyWindow(o.window) {
		// Nothing can match: an empty page, no data, nothing to log.
		if t.Context == "patient" && o.patient != t.UserID {
			return denied("other_patient")
		}
		return s.writeBundle(w, r, nil, "")
	}
	now := s.now()
	p, err := s.decide(t, o.patient, o.schemas, o.window, now)
	if err != nil {
		return err
	}
	return s.logged(w, t, o.patient, o.schemas, o.window, p, func() ([]byte, int64, error) {
		return s.renderPage(r, t, q, o, p, after)
	})
}

// renderPage reads and renders one page.
func (s *Server) renderPage(r *http.Request, t oauth.AccessToken, q url.Values, o obsQuery, p permit, after *key) ([]byte, int64, error) {
	ctx := r.Context()
	rd, err := newRenderer(o.patient)
	if err != nil {
		return nil, 0, err
	}
	srcs, err := s.sources(ctx, o.patient, p, after, o.desc)
	if err != nil {
		return nil, 0, errUnreadable(err)
	}
	buf := s.bundleHead(s.getPage(), r)
	var n int64
	var last key
	more := false
	for it, err := range merge(srcs, o.desc) {
		if err != nil {
			return nil, n, errUnreadable(err)
		}
		if int(n) == o.count {
			more = true
			break
		}
		mark := len(buf)
		if n > 0 {
			buf = append(buf, ',')
		}
		id := obsID(o.patient, it.k)
		buf = append(buf, `{"fullUrl":"`...)
		buf = append(buf, s.base...)
		buf = append(buf, "/Observation/"...)
		buf = append(buf, id...)
		buf = append(buf, `","resource":`...)
		var codes export.ObservationCodes
		buf, codes, err = rd.appendObservation(buf, id, it.json)
		if errors.Is(err, export.ErrUnsupported) {
			buf = buf[:mark]
			continue
		}
		if err != nil {
			return nil, n, err
		}
		if len(o.loinc) > 0 && !slices.Contains(o.whole, it.k.schema) && !slices.ContainsFunc(codes.LOINC, func(c string) bool { return slices.Contains(o.loinc, c) }) {
			buf = buf[:mark]
			continue
		}
		buf = append(buf, `,"search":{"mode":"match"}}`...)
		n++
		last = it.k
	}
	next := ""
	if more {
		c, err := s.sealCursor(cursor{Family: t.Family, Query: queryDigest(q), Desc: o.desc, T: last.t, Schema: last.schema, Tag: last.tag[:], Expires: s.now().Add(cursorLife)})
		if err != nil {
			return nil, n, err
		}
		nq := url.Values{}
		for k, v := range q {
			if k != "_cursor" {
				nq[k] = v
			}
		}
		nq.Set("_cursor", c)
		next = s.base + "/Observation?" + nq.Encode()
	}
	return s.bundleTail(buf, r, next, n > 0), n, nil
}

// selfURL is the request's absolute URL.
func (s *Server) selfURL(r *http.Request) string {
	u := s.base + strings.TrimPrefix(r.URL.Path, "/fhir")
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// bundleHead opens a searchset Bundle up to the first entry.
func (s *Server) bundleHead(buf []byte, r *http.Request) []byte {
	buf = append(buf, `{"resourceType":"Bundle","type":"searchset","entry":[`...)
	return buf
}

// bundleTail closes the entries and adds the links. An empty entry list
// is removed (R4 allows no empty arrays).
func (s *Server) bundleTail(buf []byte, r *http.Request, next string, any bool) []byte {
	if !any {
		buf = bytes.TrimSuffix(buf, []byte(`,"entry":[`))
	} else {
		buf = append(buf, ']')
	}
	links := []map[string]string{{"relation": "self", "url": s.selfURL(r)}}
	if next != "" {
		links = append(links, map[string]string{"relation": "next", "url": next})
	}
	lb, _ := json.Marshal(links)
	buf = append(buf, `,"link":`...)
	buf = append(buf, lb...)
	return append(buf, '}')
}

// writeBundle writes a searchset of already-rendered resources.
func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request, entries []json.RawMessage, next string) error {
	writeBytes(w, http.StatusOK, s.bundle(r, entries, next))
	return nil
}

func (s *Server) bundle(r *http.Request, entries []json.RawMessage, next string) []byte {
	buf := s.bundleHead(nil, r)
	for i, e := range entries {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, e...)
	}
	return s.bundleTail(buf, r, next, len(entries) > 0)
}

// entry wraps a resource as a search match.
func (s *Server) entry(fullURL string, resource any) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"fullUrl": fullURL, "resource": resource, "search": map[string]string{"mode": "match"}})
}

// readObservation is GET /fhir/Observation/{id}.
func (s *Server) readObservation(w http.ResponseWriter, r *http.Request) error {
	t, err := s.bearer(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if strings.HasPrefix(id, "cgm-") {
		return s.readCGMObservation(w, r, t, id)
	}
	patient, k, ok := parseObsID(id)
	if !ok {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Observation")
	}
	at := time.Unix(0, k.t).UTC()
	win := consent.Window{From: at, To: at.Add(time.Nanosecond)}
	p, err := s.decide(t, patient, []int{k.schema}, win, s.now())
	if err != nil {
		return err
	}
	var found []byte
	for rd, err := range s.records.Readings(r.Context(), patient, schemaTable[k.schema].stored(), win.From, win.To) {
		if err != nil {
			if errors.Is(err, vault.ErrNotFound) {
				break
			}
			return &Error{Status: http.StatusServiceUnavailable, Code: "transient", Reason: "unavailable", Message: "the reading could not be read; retry later", Cause: err}
		}
		if rd.Tag == k.tag {
			found = rd.JSON
		}
	}
	if found == nil {
		return refuse(http.StatusNotFound, "not-found", "not_found", "no such Observation")
	}
	return s.logged(w, t, patient, []int{k.schema}, win, p, func() ([]byte, int64, error) {
		ow, err := export.NewObservationWriter(patient)
		if err != nil {
			return nil, 0, err
		}
		b, _, err := ow.Append(nil, id, found)
		return b, 1, err
	})
}
