package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/jupyterhealth/vault/api"
	"github.com/jupyterhealth/vault/ingest/formats"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/store/boltstore"
	"github.com/jupyterhealth/vault/vault"
	"github.com/jupyterhealth/vault/web"
	"golang.org/x/sys/unix"
)

// socketAdmin runs admin actions through a running server's admin socket.
type socketAdmin struct{ c *http.Client }

func dialSocket(dir string) (*socketAdmin, bool) {
	sock := sockPath(dir)
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, false
	}
	conn.Close()
	c := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	return &socketAdmin{c: c}, true
}

// refuseLive refuses a command that runs only offline while a server
// answers on data's admin socket; why says what needs it stopped.
func refuseLive(data, why string) error {
	if _, live := dialSocket(data); live {
		return fmt.Errorf("a server is running on %s: stop it first (%s)", data, why)
	}
	return nil
}

func (s *socketAdmin) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://vault"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.c.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Message != "" {
			return fmt.Errorf("%s (%s)", eb.Message, eb.Code)
		}
		return fmt.Errorf("admin socket answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (s *socketAdmin) AddUser(ctx context.Context, r api.AdminUserRequest) (api.AdminUserResponse, error) {
	var out api.AdminUserResponse
	return out, s.call(ctx, http.MethodPost, "/admin/users", r, &out)
}

func (s *socketAdmin) DeleteUser(ctx context.Context, id string) error {
	return s.call(ctx, http.MethodDelete, "/admin/users/"+id, nil, nil)
}

func (s *socketAdmin) Users(ctx context.Context, role string) ([]api.AdminUser, error) {
	var out []api.AdminUser
	return out, s.call(ctx, http.MethodGet, "/admin/users?"+url.Values{"role": {role}}.Encode(), nil, &out)
}

func (s *socketAdmin) UserDetail(ctx context.Context, id string) (api.AdminUserDetail, error) {
	var out api.AdminUserDetail
	return out, s.call(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(id), nil, &out)
}

func (s *socketAdmin) MintToken(ctx context.Context, r api.AdminTokenRequest) (api.AdminTokenResponse, error) {
	var out api.AdminTokenResponse
	return out, s.call(ctx, http.MethodPost, "/admin/tokens", r, &out)
}

func (s *socketAdmin) VerifyLedger(r api.AdminVerifyRequest) (api.AdminVerifyResponse, error) {
	var out api.AdminVerifyResponse
	return out, s.call(context.Background(), http.MethodPost, "/admin/ledger/verify", r, &out)
}

func (s *socketAdmin) RebuildLedgerIndex() (int, error) {
	var out struct {
		Grants int `json:"grants"`
	}
	return out.Grants, s.call(context.Background(), http.MethodPost, "/admin/ledger/rebuild", nil, &out)
}

// Import streams the file to the server, which spools it encrypted and
// imports it; it may take minutes, so it has no overall timeout.
func (s *socketAdmin) Import(ctx context.Context, r api.AdminImportRequest, body io.Reader) (importer.Result, error) {
	q := url.Values{"patient": {r.Patient}}
	if r.Format != "" {
		q.Set("format", r.Format)
	}
	if r.DateOrder != "" {
		q.Set("date_order", r.DateOrder)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://vault/admin/import?"+q.Encode(), body)
	if err != nil {
		return importer.Result{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	c := *s.c
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		return importer.Result{}, fmt.Errorf("admin socket: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb api.ErrorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Message != "" {
			return importer.Result{}, fmt.Errorf("%s (%s)", eb.Message, eb.Code)
		}
		return importer.Result{}, fmt.Errorf("admin socket answered %s", resp.Status)
	}
	var out importer.Result
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func (s *socketAdmin) RotateKeys(ctx context.Context) (vault.RotateResult, error) {
	var out vault.RotateResult
	c := *s.c
	c.Timeout = 0 // re-wrapping many patients takes a while
	return out, (&socketAdmin{c: &c}).call(ctx, http.MethodPost, "/admin/keys/rotate", nil, &out)
}

// RewriteRecords asks the server to rewrite; the server logs its progress
// (o.Progress is not called: the socket answers once, at the end).
func (s *socketAdmin) RewriteRecords(ctx context.Context, o vault.RewriteOptions) (vault.RewriteResult, error) {
	var out vault.RewriteResult
	c := *s.c
	c.Timeout = 0 // rewriting a big vault takes a while
	path := "/admin/records/rewrite"
	if o.Batch > 0 {
		path += "?batch=" + strconv.Itoa(o.Batch)
	}
	return out, (&socketAdmin{c: &c}).call(ctx, http.MethodPost, path, nil, &out)
}

func (s *socketAdmin) RecordStatus(ctx context.Context) (vault.RecordStatus, error) {
	var out vault.RecordStatus
	c := *s.c
	c.Timeout = 0 // it reads every record
	return out, (&socketAdmin{c: &c}).call(ctx, http.MethodGet, "/admin/records/status", nil, &out)
}

func (s *socketAdmin) Invite(ctx context.Context, r api.AdminInviteRequest) (api.AdminInviteResponse, error) {
	var out api.AdminInviteResponse
	return out, s.call(ctx, http.MethodPost, "/admin/invites", r, &out)
}

func (s *socketAdmin) KeyStatus(ctx context.Context) (vault.KeyStatus, error) {
	var out vault.KeyStatus
	return out, s.call(ctx, http.MethodGet, "/admin/keys/status", nil, &out)
}

func (s *socketAdmin) LedgerKey() (string, error) {
	var out struct {
		Key string `json:"verifier_key"`
	}
	return out.Key, s.call(context.Background(), http.MethodGet, "/admin/ledger/key", nil, &out)
}

// withAdmin runs fn against the running server's socket, or, when no server
// runs, against the database file opened directly with a lock timeout.
func withAdmin(sf storeFlags, stderr io.Writer, fn func(api.AdminOps) error) error {
	return withAdminBase(sf, nil, stderr, fn)
}

// withAdminBase is withAdmin for an action that needs the web UI on the
// file directly (an invite): base is the vault's public URL.
func withAdminBase(sf storeFlags, base *url.URL, stderr io.Writer, fn func(api.AdminOps) error) error {
	if s, ok := dialSocket(sf.data); ok {
		return fn(s)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, st, root, err := openVault(context.Background(), sf, openExisting, false, 2*time.Second, log)
	if errors.Is(err, boltstore.ErrLocked) {
		return fmt.Errorf("the database in %s is locked by another process, and no server answers on %s; is a vault running as another user?", sf.data, sockPath(sf.data))
	}
	if err != nil {
		return err
	}
	defer st.Close()
	led, err := openLedger(st, v, "")
	if err != nil {
		return err
	}
	local := api.LocalAdmin{Vault: v, Ledger: led, Log: log, Importers: formats.New(), Store: snapshotter(st), Root: root,
		OAuth: &fileOAuth{st: st, v: v, led: led}} // client.go
	if base != nil {
		ws, err := web.New(web.Config{Vault: v, Ledger: led, Store: st.Web(), BaseURL: base, Logger: log})
		if err != nil {
			return err
		}
		local.Invites = ws
	}
	return adminError(fn(local))
}

// adminError words an admin action's failure, run on the database
// directly, as the admin socket would: a caller's mistake or a failed
// verification with its message and code; anything else as it is.
func adminError(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		ae = api.AdminError(err)
	}
	if ae.Code != "internal" {
		return fmt.Errorf("%s (%s)", ae.Message, ae.Code)
	}
	return err
}

func cmdAdmin(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch {
	case args[0] == "user" && len(args) > 1 && args[1] == "add":
		return adminUserAdd(args[2:], stdout, stderr)
	case args[0] == "user" && len(args) > 1 && args[1] == "delete":
		return adminUserDelete(args[2:], stdin, stdout, stderr)
	case args[0] == "user" && len(args) > 1 && args[1] == "list":
		return adminUserList(args[2:], stdout, stderr)
	case args[0] == "user" && len(args) > 1 && args[1] == "show":
		return adminUserShow(args[2:], stdout, stderr)
	case args[0] == "token":
		return adminToken(args[1:], stdout, stderr)
	case args[0] == "ledger-key":
		return adminLedgerKey(args[1:], stdout, stderr)
	case args[0] == "invite":
		return adminInvite(args[1:], stdout, stderr)
	case args[0] == "records" && len(args) > 1 && args[1] == "rewrite":
		return adminRecordsRewrite(args[2:], stdout, stderr)
	case args[0] == "records" && len(args) > 1 && args[1] == "status":
		return adminRecordsStatus(args[2:], stdout, stderr)
	case args[0] == "compact":
		return adminCompact(args[1:], stdout, stderr) // compact.go
	case args[0] == "client":
		return adminClientCmd(args[1:], stdout, stderr) // client.go
	}
	fmt.Fprintf(stderr, "vault admin: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}

func adminUserAdd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin user add", stderr)
	var sf storeFlags
	sf.register(fs)
	role := fs.String("role", "", "patient or clinician")
	name := fs.String("name", "", "the person's name (stored encrypted)")
	org := fs.String("org", "", "organisation, for clinicians")
	tz := fs.String("tz", "UTC", "IANA time zone, such as America/New_York")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role == "" || *name == "" {
		fmt.Fprintln(stderr, "vault admin user add: --role and --name are required")
		return errUsage
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		out, err := ops.AddUser(context.Background(), api.AdminUserRequest{Role: *role, Name: *name, Organization: *org, TimeZone: *tz})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.ID)
		return nil
	})
}

func adminUserDelete(args []string, stdin *os.File, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin user delete", stderr)
	sv := registerServe(fs) // the store flags and --base-url, for the web UI's records when no server runs
	user := fs.String("user", "", "the patient's id (pt_…)")
	yes := fs.Bool("yes", false, "delete without asking (for scripts): nothing can undo it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" {
		fmt.Fprintln(stderr, "vault admin user delete: --user is required")
		return errUsage
	}
	base, err := resolveBaseURL(*sv.addr, *sv.baseURL)
	if err != nil {
		return err
	}
	if !*yes {
		if err := confirmDelete(stdin, isTerminal(stdin), stderr, *user); err != nil {
			return err
		}
	}
	return withAdminBase(sv.store, base, stderr, func(ops api.AdminOps) error {
		if err := ops.DeleteUser(context.Background(), *user); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "deleted", *user, "(its keys are destroyed; older backups still hold them, see docs/architecture.md)")
		return nil
	})
}

// isTerminal reports whether f is a terminal (a tty answers the termios
// request; a pipe, a file or /dev/null does not).
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// confirmDelete asks for the id to be typed again before a crypto-shred.
// Without a terminal there is no one to ask: it refuses, and says to
// pass --yes.
func confirmDelete(in io.Reader, terminal bool, prompt io.Writer, id string) error {
	if !terminal {
		return fmt.Errorf("deleting %s destroys its keys at once and cannot be undone; standard input is not a terminal to confirm on, so pass --yes to delete without asking", id)
	}
	fmt.Fprintf(prompt, "Deleting %s destroys its keys at once; nothing can undo it.\nType the id again to confirm: ", id)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the confirmation: %v", err)
	}
	if strings.TrimSpace(line) != id {
		return fmt.Errorf("the id typed does not match %s: nothing was deleted", id)
	}
	return nil
}

// adminUserList prints every account, or those of one role: id, role,
// created, time zone, organisation and name. Names are sealed in the
// store; they are opened for this terminal only and never logged.
func adminUserList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin user list", stderr)
	var sf storeFlags
	sf.register(fs)
	role := fs.String("role", "", "only this role: patient or clinician (default both)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		us, err := ops.Users(context.Background(), *role)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, us)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tROLE\tCREATED\tTZ\tORGANISATION\tNAME")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Role, u.Created.UTC().Format(time.RFC3339), dash(u.TimeZone), dash(u.Organization), oneLine(u.Name))
		}
		return tw.Flush()
	})
}

// adminUserShow prints one account, its API tokens (ids and kinds, never
// secrets) and how many grants it gave or received.
func adminUserShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin user show", stderr)
	var sf storeFlags
	sf.register(fs)
	user := fs.String("user", "", "the user's id (pt_… or cl_…)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" {
		fmt.Fprintln(stderr, "vault admin user show: --user is required")
		return errUsage
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		d, err := ops.UserDetail(context.Background(), *user)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, d)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "id:\t%s\nrole:\t%s\nname:\t%s\n", d.ID, d.Role, oneLine(d.Name))
		if d.Organization != "" {
			fmt.Fprintf(tw, "organisation:\t%s\n", oneLine(d.Organization))
		}
		fmt.Fprintf(tw, "time zone:\t%s\ncreated:\t%s\n", dash(d.TimeZone), d.Created.UTC().Format(time.RFC3339))
		what := "grants given"
		if d.Role == "clinician" {
			what = "grants received"
		}
		fmt.Fprintf(tw, "%s:\t%d (%d active)\n", what, d.Grants, d.ActiveGrants)
		fmt.Fprintf(tw, "tokens:\t%d\n", len(d.Tokens))
		tw.Flush()
		if len(d.Tokens) == 0 {
			return nil
		}
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN\tKIND\tCREATED\tEXPIRES\tLAST USED")
		now := time.Now()
		for _, t := range d.Tokens {
			exp := t.Expires.UTC().Format(time.RFC3339)
			if !now.Before(t.Expires) {
				exp += " (expired)"
			}
			used := "never"
			if !t.LastUsed.IsZero() {
				used = t.LastUsed.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Kind, t.Created.UTC().Format(time.RFC3339), exp, used)
		}
		return tw.Flush()
	})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a stored name in one table cell: control characters (a
// newline, a tab, an escape sequence) would break the table or the
// terminal, and become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

func adminToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin token", stderr)
	var sf storeFlags
	sf.register(fs)
	user := fs.String("user", "", "the user's id")
	kind := fs.String("kind", "", "device, patient or clinician")
	ttl := fs.Duration("ttl", 0, "lifetime (default: device 4320h, patient and clinician 720h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" || *kind == "" {
		fmt.Fprintln(stderr, "vault admin token: --user and --kind are required")
		return errUsage
	}
	if *ttl < 0 {
		fmt.Fprintln(stderr, "vault admin token: --ttl must be positive")
		return errUsage
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		out, err := ops.MintToken(context.Background(), api.AdminTokenRequest{User: *user, Kind: *kind, TTL: *ttl})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.Token)
		fmt.Fprintf(stderr, "token %s expires %s; it is shown only this once\n", out.ID, out.Expires.Format(time.RFC3339))
		return nil
	})
}

func adminLedgerKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin ledger-key", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		k, err := ops.LedgerKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, k)
		return nil
	})
}

// adminInvite prints a one-time link for a user to enrol a passkey in the
// web UI.
func adminInvite(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin invite", stderr)
	sv := registerServe(fs) // the store flags and --base-url, for an offline invite
	user := fs.String("user", "", "the user's id (pt_… or cl_…)")
	ttl := fs.Duration("ttl", 0, "how long the link works (default 72h, at most 720h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" {
		fmt.Fprintln(stderr, "vault admin invite: --user is required")
		return errUsage
	}
	base, err := resolveBaseURL(*sv.addr, *sv.baseURL)
	if err != nil {
		return err
	}
	return withAdminBase(sv.store, base, stderr, func(ops api.AdminOps) error {
		out, err := ops.Invite(context.Background(), api.AdminInviteRequest{User: *user, TTL: *ttl})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, out.Link)
		fmt.Fprintln(stderr, "one-time link; send it to the user by a channel you trust")
		return nil
	})
}

// adminRecordsRewrite moves every record written in an older format to the
// current one, online through the running server or on the file. One cut
// short is finished by running it again.
func adminRecordsRewrite(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin records rewrite", stderr)
	var sf storeFlags
	sf.register(fs)
	batch := fs.Int("batch", vault.DefaultRewriteBatch, "records per transaction (1 to 100000)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *batch > vault.MaxRewriteBatch {
		return fmt.Errorf("--batch must be from 1 to %d", vault.MaxRewriteBatch)
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error {
		t := time.Now()
		// On the file, each committed transaction is reported on stderr;
		// through the socket, the server logs them.
		progress := func(r vault.RewriteResult) {
			fmt.Fprintf(stderr, "records rewrite: %d rewritten, %d already current, %d patients, %d transactions committed\n", r.Rewritten, r.Current, r.Patients, r.Batches)
		}
		res, err := ops.RewriteRecords(context.Background(), vault.RewriteOptions{Batch: *batch, Progress: progress})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rewrote %d records to format %d (%d were in it already), %d patients, in %.1f s\n", res.Rewritten, vault.RecordFormat, res.Current, res.Patients, time.Since(t).Seconds())
		return printRecordStatus(ops, stdout)
	})
}

func adminRecordsStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("admin records status", stderr)
	var sf storeFlags
	sf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return withAdmin(sf, stderr, func(ops api.AdminOps) error { return printRecordStatus(ops, stdout) })
}

// printRecordStatus prints the records by format, and whether a rewrite
// has anything to do.
func printRecordStatus(ops api.AdminOps, w io.Writer) error {
	st, err := ops.RecordStatus(context.Background())
	if err != nil {
		return err
	}
	old := 0
	for f, n := range st.Formats {
		if f != st.Current {
			old += n
		}
	}
	fmt.Fprintf(w, "%d patients; records in format 1 (wrapped DEK): %d; format 2 (compact): %d\n", st.Patients, st.Formats[vault.FormatWrapped], st.Formats[vault.FormatCompact])
	if old > 0 {
		_, err = fmt.Fprintf(w, "%d records are in an older format: run 'vault admin records rewrite'\n", old)
	} else {
		_, err = fmt.Fprintf(w, "every record is in the current format (%d)\n", st.Current)
	}
	return err
}
