package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/store/storetest"
	"github.com/jupyterhealth/vault/web"
	"github.com/jupyterhealth/vault/web/webstore"
)

// lockedBuffer collects log lines from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// storeCanary is the text of the web store failure the test injects.
const storeCanary = "canary-41f0d3-invite-store"

// failingInvites is the web UI's real store (bbolt) whose PutInvite fails,
// once armed, with an error holding storeCanary.
type failingInvites struct {
	web.Store
	armed atomic.Bool
}

func (s *failingInvites) PutInvite(ctx context.Context, inv webstore.Invite, sweep time.Time) error {
	if s.armed.Load() {
		return errors.New("invite bucket unwritable: " + storeCanary)
	}
	return s.Store.PutInvite(ctx, inv, sweep)
}

// TestAdminInviteErrors drives vault admin invite's every outcome through
// the admin socket (a real unix socket, the real web UI on the vault's
// bbolt file): the caller's mistakes answer 4xx with a stable code and a
// message to act on; an internal failure (the ledger's, the web store's)
// answers 500 with the generic message, its text only in the log.
func TestAdminInviteErrors(t *testing.T) {
	type tc struct {
		name    string
		noWeb   bool
		prepare func(f *fixture, ws *failingInvites) string // the request body
		status  int
		code    string
		message string
		cause   string // the injected failure's text, which the log must hold
	}
	for _, c := range []tc{
		{name: "made", prepare: func(f *fixture, _ *failingInvites) string { return `{"user":"` + f.patient.ID + `"}` },
			status: http.StatusCreated},
		{name: "too long", prepare: func(f *fixture, _ *failingInvites) string {
			return `{"user":"` + f.patient.ID + `","ttl":` + strconv.FormatInt(int64(web.MaxInviteTTL+time.Hour), 10) + `}`
		}, status: http.StatusBadRequest, code: "bad_ttl", message: "an invite may last at most 720h0m0s"},
		{name: "unknown user", prepare: func(*fixture, *failingInvites) string { return `{"user":"pt_nobody"}` },
			status: http.StatusNotFound, code: "no_user", message: "no such user"},
		{name: "not JSON", prepare: func(*fixture, *failingInvites) string { return `{"user":` },
			status: http.StatusBadRequest, code: "bad_request", message: "not valid JSON"},
		{name: "no web UI", noWeb: true, prepare: func(f *fixture, _ *failingInvites) string { return `{"user":"` + f.patient.ID + `"}` },
			status: http.StatusNotImplemented, code: "no_web_ui", message: "no web UI"},
		{name: "ledger fails", prepare: func(f *fixture, _ *failingInvites) string {
			f.ledgerStore.FailWrites.Store(true)
			f.ledgerStore.FailReads.Store(true)
			return `{"user":"` + f.patient.ID + `"}`
		}, status: http.StatusInternalServerError, code: "internal", message: "the error has been logged", cause: storetest.ErrInjected.Error()},
		{name: "web store fails", prepare: func(f *fixture, ws *failingInvites) string {
			ws.armed.Store(true)
			return `{"user":"` + f.patient.ID + `"}`
		}, status: http.StatusInternalServerError, code: "internal", message: "the error has been logged", cause: storeCanary},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, api.Config{})
			logs := &lockedBuffer{}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			base, err := url.Parse("http://localhost:8080")
			if err != nil {
				t.Fatal(err)
			}
			ws := &failingInvites{Store: f.store.Web()}
			admin := api.LocalAdmin{Vault: f.v, Ledger: f.ledger, Log: log}
			if !c.noWeb {
				srv, err := web.New(web.Config{Vault: f.v, Ledger: f.ledger, Store: ws, BaseURL: base, Logger: log})
				if err != nil {
					t.Fatal(err)
				}
				admin.Invites = srv
			}
			client := serveAdmin(t, api.NewAdmin(admin, log))
			body := c.prepare(f, ws)
			resp, err := client.Post("http://vault/admin/invites", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if c.status == http.StatusCreated {
				var out api.AdminInviteResponse
				if err := json.Unmarshal(raw, &out); err != nil || !strings.HasPrefix(out.Link, "http://localhost:8080/enrol/"+web.InvitePrefix) {
					t.Fatalf("%v: %s", err, raw)
				}
				return
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(raw, &eb); err != nil {
				t.Fatalf("%v: %s", err, raw)
			}
			if eb.Code != c.code || !strings.Contains(eb.Message, c.message) {
				t.Fatalf("got %+v, want %s with %q", eb, c.code, c.message)
			}
			for _, internal := range []string{storetest.ErrInjected.Error(), storeCanary, "ledger", "invite not"} {
				if strings.Contains(string(raw), internal) {
					t.Fatalf("the response holds internal text %q: %s", internal, raw)
				}
			}
			if c.cause != "" && !strings.Contains(logs.String(), c.cause) {
				t.Fatalf("the log lacks the cause %q:\n%s", c.cause, logs)
			}
		})
	}
}

// serveAdmin serves h on a unix socket, as vault serve serves the admin
// API, and returns a client that dials it.
func serveAdmin(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}
