package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"filippo.io/age"
	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/consent"
	"golang.org/x/mod/sumdb/tlog"
)

// TestExportRevokeRace: many exports run at once through the handler, on
// the real bbolt ledger, while the patient revokes the grant. Every export
// answered 200 has its access-start before the revoke in the log and a
// manifest whose checkpoint covers and proves it; every export asked once
// the revoke had returned is refused; the access log holds exactly the
// 200s, each ended and complete.
func TestExportRevokeRace(t *testing.T) {
	e := newExportEnvConfig(t, api.Config{KeyActivationDelay: -1, ExportsPerMinute: 1 << 20, ExportBurstPerGrant: 1 << 30})
	url := e.srv.URL + e.exportURL(e.patient.ID, "schema=omh:blood-glucose:4.0")
	const workers, maxRounds = 16, 400
	var revoked atomic.Bool
	var mu sync.Mutex
	var ok []int64
	var bodies [][]byte
	served := make(chan struct{}, workers*maxRounds)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range maxRounds {
				after := revoked.Load()
				req, err := http.NewRequest("GET", url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+e.clin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Error(err)
					return
				}
				switch resp.StatusCode {
				case 200:
					at, err := strconv.ParseInt(resp.Header.Get("X-Vault-Access-Start"), 10, 64)
					if err != nil {
						t.Errorf("worker %d: access-start header %q", w, resp.Header.Get("X-Vault-Access-Start"))
						return
					}
					if after {
						t.Errorf("worker %d: export at %d answered 200, asked after the revoke returned", w, at)
						return
					}
					mu.Lock()
					ok = append(ok, at)
					if len(bodies) < 8 {
						bodies = append(bodies, b)
					}
					mu.Unlock()
					served <- struct{}{}
				case 403:
					var eb api.ErrorBody
					if json.Unmarshal(b, &eb) != nil || eb.Code != "no_consent" {
						t.Errorf("worker %d: 403 %s", w, b)
						return
					}
					if after {
						return
					}
				default:
					t.Errorf("worker %d: %d %s", w, resp.StatusCode, b)
					return
				}
			}
			t.Errorf("worker %d: no refusal in %d exports", w, maxRounds)
		})
	}
	// Revoke once exports are flowing.
	for range 2 * workers {
		<-served
	}
	if st, b := e.do(t, "POST", "/api/v1/grants/"+e.grantID+"/revoke", e.ptok, "", nil); st != 200 {
		t.Fatalf("revoke: %d %s", st, b)
	}
	revoked.Store(true)
	wg.Wait()
	if t.Failed() {
		return
	}
	g, err := e.ledger.Grant(e.grantID)
	if err != nil || g.RevokeIndex == nil {
		t.Fatalf("grant after the revoke: %+v %v", g, err)
	}
	logged := map[int64]bool{}
	for _, a := range mustAccesses(t, e.ledger, e.patient.ID) {
		if a.End == nil || a.Incomplete {
			t.Errorf("access %d not ended complete: %+v", a.Start, a)
		}
		logged[a.Start] = true
	}
	for _, at := range ok {
		if at > *g.RevokeIndex {
			t.Errorf("export with access-start %d answered 200; the revoke is at %d", at, *g.RevokeIndex)
		}
		if !logged[at] {
			t.Errorf("export %d answered 200 but is not in the access log", at)
		}
	}
	if len(logged) != len(ok) {
		t.Errorf("%d accesses logged, %d exports answered 200", len(logged), len(ok))
	}
	// The manifests: a checkpoint by the pinned key that covers the
	// export's own access-start, with its inclusion proof.
	for _, b := range bodies {
		r, err := age.Decrypt(bytes.NewReader(b), e.id)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		m, _, _ := splitExport(t, plain)
		cp, err := consent.OpenCheckpoint([]byte(m.Checkpoint), e.ledger.VerifierKey())
		if err != nil || cp.Size <= m.AccessStart {
			t.Fatalf("checkpoint of size %d for access-start %d: %v", cp.Size, m.AccessStart, err)
		}
		p := m.Proofs[fmt.Sprint(m.AccessStart)]
		var proof tlog.RecordProof
		for _, s := range p.Proof {
			h, _ := base64.StdEncoding.DecodeString(s)
			proof = append(proof, tlog.Hash(h))
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, m.AccessStart, tlog.RecordHash(m.Entries[fmt.Sprint(m.AccessStart)])); err != nil {
			t.Fatalf("access-start %d in its checkpoint: %v", m.AccessStart, err)
		}
	}
	if _, err := e.ledger.Verify(nil); err != nil {
		t.Fatal(err)
	}
}
