package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/jupyterhealth/vault/consent"
	"github.com/labstack/echo/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// The ledger's read endpoints. Checkpoints and proofs hold hashes only and
// are public; an entry's content goes only to the parties it names.

// getCheckpoint returns the newest signed checkpoint. With ?fresh=1 it
// signs one covering every entry so far first (a new signature only when
// entries arrived since the last), for a caller that needs a proof now.
func (s *Server) getCheckpoint(c echo.Context) error {
	cp, err := s.ledger.LatestCheckpoint()
	if err == nil && (cp == nil || c.QueryParam("fresh") != "") {
		cp, err = s.ledger.Sign()
	}
	if err != nil {
		return internal(err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", cp)
}

func queryInt(c echo.Context, name string) (int64, bool, *Error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, true, newError(http.StatusBadRequest, "bad_parameter", "%s must be a non-negative integer", name)
	}
	return n, true, nil
}

// ProofResponse is an inclusion or consistency proof.
type ProofResponse = consent.Proof

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func (s *Server) getProof(c echo.Context) error {
	index, hasIndex, aerr := queryInt(c, "index")
	if aerr != nil {
		return aerr
	}
	from, hasFrom, aerr := queryInt(c, "from")
	if aerr != nil {
		return aerr
	}
	size, hasSize, aerr := queryInt(c, "size")
	if aerr != nil {
		return aerr
	}
	if !hasSize || hasIndex == hasFrom {
		return newError(http.StatusBadRequest, "bad_parameter", "ask for ?index=I&size=N (inclusion) or ?from=M&size=N (consistency)")
	}
	if _, err := s.ledger.TreeHash(size); err != nil {
		return newError(http.StatusBadRequest, "bad_parameter", "size is beyond the log")
	}
	if hasIndex {
		out, err := s.ledger.InclusionProof(index, size)
		if err != nil {
			return newError(http.StatusBadRequest, "bad_parameter", "need 0 <= index < size <= the log's size")
		}
		return c.JSON(http.StatusOK, out)
	}
	out, err := s.ledger.ConsistencyProof(from, size)
	if err != nil {
		return newError(http.StatusBadRequest, "bad_parameter", "need 1 <= from <= size <= the log's size")
	}
	return c.JSON(http.StatusOK, out)
}

// EntryResponse is one ledger entry, for a party to it. Entry is the
// canonical bytes the leaf hashes, in standard base64, so a client can hash
// exactly them (re-encoding parsed JSON would not give the same bytes).
type EntryResponse struct {
	Index    int64  `json:"index"`
	LeafHash string `json:"leaf_hash"`
	Entry    []byte `json:"entry"`
}

func (s *Server) getEntry(c echo.Context) error {
	tok := principal(c)
	i, err := strconv.ParseInt(c.Param("i"), 10, 64)
	if err != nil || i < 0 {
		return newError(http.StatusBadRequest, "bad_parameter", "the entry index must be a non-negative integer")
	}
	e, raw, err := s.ledger.Entry(i)
	hidden := newError(http.StatusNotFound, "no_entry", "no ledger entry with that index names you")
	if errors.Is(err, consent.ErrNoEntry) {
		return hidden
	}
	if err != nil {
		return internal(err)
	}
	party := false
	for _, p := range e.Parties() {
		party = party || p == tok.UserID
	}
	if !party {
		// The same answer as for a missing entry: existence is not revealed.
		return hidden
	}
	leaf, err := s.ledger.LeafHash(i)
	if err != nil {
		return internal(err)
	}
	return c.JSON(http.StatusOK, EntryResponse{Index: i, LeafHash: b64(leaf), Entry: raw})
}
