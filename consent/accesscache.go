package consent

import (
	"bytes"
	"slices"
	"sync"
)

// accessCacheRows is the most opened access rows a ledger keeps: about
// 4,000 rows of ~1 KiB (the sealed row and what it opens to), 40 first
// pages of the access log at its default size.
const accessCacheRows = 4096

// accessCache keeps access rows the ledger has opened, so that reading an
// access-log page again costs a store read and a comparison per row
// rather than a decryption and a JSON decoding (which were three quarters
// of the page's CPU, and a fifth of the server's under the load mix).
//
// An entry is used only when the row's sealed bytes, read from the store
// in the page's own transaction, are exactly those it was opened from: a
// row that changed (its access-end logged, the master key rotated, a
// rebuild, another replica's write) has new bytes, since every sealing
// draws a fresh nonce, and is opened again; a row the store no longer
// holds is not served from here. The sealed bytes are bound to the row's
// id by the AEAD's associated data, and the cache is keyed by that id.
// It holds what the access log shows (who read, when, which schemas), no
// reading, and only in memory.
type accessCache struct {
	mu   sync.Mutex
	rows map[string]cachedAccess
}

type cachedAccess struct {
	sealed []byte
	state  AccessState
}

// get returns the row id opened from exactly sealed, if it is kept.
func (c *accessCache) get(id string, sealed []byte) (AccessState, bool) {
	c.mu.Lock()
	e, ok := c.rows[id]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.sealed, sealed) {
		return AccessState{}, false
	}
	return e.state.clone(), true
}

// put keeps what id's sealed bytes opened to; the bytes are copied (the
// store's are valid only inside its transaction). When full, an arbitrary
// entry makes room.
func (c *accessCache) put(id string, sealed []byte, st *AccessState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rows == nil {
		c.rows = make(map[string]cachedAccess, accessCacheRows)
	}
	if _, ok := c.rows[id]; !ok && len(c.rows) >= accessCacheRows {
		for k := range c.rows {
			delete(c.rows, k)
			break
		}
	}
	c.rows[id] = cachedAccess{sealed: bytes.Clone(sealed), state: st.clone()}
}

// clone is a copy of a that shares no memory with it.
func (a AccessState) clone() AccessState {
	a.Grants = slices.Clone(a.Grants)
	a.Schemas = slices.Clone(a.Schemas)
	a.ContentHash = bytes.Clone(a.ContentHash)
	if a.End != nil {
		end := *a.End
		a.End = &end
	}
	return a
}
