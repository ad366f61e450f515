package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/ingest/importer"
	"github.com/jupyterhealth/vault/keys"
	"github.com/jupyterhealth/vault/vault"
	"github.com/labstack/echo/v4"
)

// Admin requests and responses, shared by the socket server and the CLI.
type (
	AdminUserRequest struct {
		Role         string `json:"role"`
		Name         string `json:"name"`
		Organization string `json:"organization,omitempty"`
		TimeZone     string `json:"tz,omitempty"`
	}
	AdminUserResponse struct {
		ID string `json:"id"`
	}
	// AdminUser is an account as 'vault admin user list' shows it. The
	// name is decrypted for the admin's terminal only: it travels over the
	// 0600 socket and is never logged.
	AdminUser struct {
		ID           string    `json:"id"`
		Role         string    `json:"role"`
		Name         string    `json:"name"`
		Organization string    `json:"organization,omitempty"`
		TimeZone     string    `json:"tz,omitempty"`
		Created      time.Time `json:"created"`
	}
	// AdminUserDetail is one account with its API tokens (never their
	// secrets) and its grants given or received, for 'vault admin user show'.
	AdminUserDetail struct {
		AdminUser
		Tokens       []AdminTokenInfo `json:"tokens"`
		ActiveGrants int              `json:"active_grants"`
		Grants       int              `json:"grants"`
	}
	AdminTokenInfo struct {
		ID       string    `json:"id"`
		Kind     string    `json:"kind"`
		Created  time.Time `json:"created"`
		Expires  time.Time `json:"expires"`
		LastUsed time.Time `json:"last_used,omitzero"`
	}
	AdminTokenRequest struct {
		User string        `json:"user"`
		Kind string        `json:"kind"`
		TTL  time.Duration `json:"ttl,omitempty"`
	}
	AdminTokenResponse struct {
		Token   string    `json:"token"`
		ID      string    `json:"id"`
		Expires time.Time `json:"expires"`
	}
	// AdminImportRequest names the patient and, optionally, the format of
	// a file an admin imports (vault import).
	AdminImportRequest struct {
		Patient   string `json:"patient"`
		Format    string `json:"format,omitempty"`
		DateOrder string `json:"date_order,omitempty"`
	}
	AdminInviteRequest struct {
		User string        `json:"user"`
		TTL  time.Duration `json:"ttl,omitempty"`
	}
	AdminInviteResponse struct {
		Link string `json:"link"`
	}
	AdminVerifyRequest struct {
		Checkpoint []byte `json:"checkpoint,omitempty"` // a signed checkpoint kept from earlier
	}
	AdminVerifyResponse struct {
		Size        int64  `json:"size"`
		Checkpoints int    `json:"checkpoints"`
		LatestSize  int64  `json:"latest_size"`
		PriorSize   *int64 `json:"prior_size,omitempty"`
		VerifierKey string `json:"verifier_key"`
		// SignedGrants counts the grants whose passkey assertion verified
		// against their passkey-registered entry.
		SignedGrants int `json:"signed_grants"`
		// ConfirmedKeys counts the clinician keys whose passkey
		// confirmation verified the same way.
		ConfirmedKeys int `json:"confirmed_keys"`
	}
)

// AdminOps are the admin actions. *Vault-backed Admin implements them
// locally; the CLI also implements them over the admin socket.
type AdminOps interface {
	AddUser(ctx context.Context, r AdminUserRequest) (AdminUserResponse, error)
	DeleteUser(ctx context.Context, id string) error
	// Users lists the accounts of a role ("" for both), in id order.
	Users(ctx context.Context, role string) ([]AdminUser, error)
	// UserDetail is one account, its tokens and its grant counts.
	UserDetail(ctx context.Context, id string) (AdminUserDetail, error)
	MintToken(ctx context.Context, r AdminTokenRequest) (AdminTokenResponse, error)
	VerifyLedger(AdminVerifyRequest) (AdminVerifyResponse, error)
	LedgerKey() (string, error)
	RebuildLedgerIndex() (int, error)
	// Import imports a patient's file. body is an *os.File when the CLI
	// runs on the database directly, or the upload over the socket.
	Import(ctx context.Context, r AdminImportRequest, body io.Reader) (importer.Result, error)
	// Backup writes a consistent snapshot of the database to w; size is
	// told its length before the first byte.
	Backup(w io.Writer, size func(int64)) (int64, error)
	// RotateKeys adds a master primary and re-wraps every patient key under
	// it, or finishes an interrupted rotation.
	RotateKeys(ctx context.Context) (vault.RotateResult, error)
	// KeyStatus reports the master keys and any rotation under way.
	KeyStatus(ctx context.Context) (vault.KeyStatus, error)
	// RewriteRecords moves every record not in the current format to it
	// (resumable: run again after an interruption), o.Batch records per
	// transaction; o.Progress, if set, is called after each one (where
	// the records are: a socket client gets only the result).
	RewriteRecords(ctx context.Context, o vault.RewriteOptions) (vault.RewriteResult, error)
	// RecordStatus counts the stored records by format.
	RecordStatus(ctx context.Context) (vault.RecordStatus, error)
	// Invite makes a one-time passkey enrolment link.
	Invite(ctx context.Context, r AdminInviteRequest) (AdminInviteResponse, error)
	// AddClient, Clients and RemoveClient manage the OAuth provider's
	// clients; RotateOIDCKey rotates its ID-token signing key
	// (admin_oauth.go).
	AddClient(ctx context.Context, r AdminClientRequest) (AdminClientResponse, error)
	Clients(ctx context.Context) ([]AdminClient, error)
	RemoveClient(ctx context.Context, id string) error
	RotateOIDCKey(ctx context.Context) (AdminOIDCKeys, error)
}

// Snapshotter is the store's backup, as LocalAdmin.Backup needs it: a
// consistent snapshot of the whole database written to w, size told its
// length before the first byte, and the time of the backup recorded for
// the metrics (StoreInfo.LastBackup). The bbolt store implements it.
type Snapshotter interface {
	Backup(w io.Writer, size func(int64)) (int64, error)
}

// LocalAdmin runs admin actions on an open vault. Every action is also an
// admin entry in the consent ledger.
type LocalAdmin struct {
	Vault     *vault.Vault
	Ledger    *consent.Ledger
	Log       *slog.Logger
	Importers Importers   // for Import
	SpoolDir  string      // for an upload over the socket (os.TempDir() when empty)
	Store     Snapshotter // for Backup
	Root      *keys.Root  // for RotateKeys: it wraps the rotated master
	Invites   Inviter     // for Invite
	OAuth     OAuthAdmin  // for the OAuth clients and signing key
}

// Inviter is the web UI (*web.Server): it makes one-time passkey
// enrolment links, and forgets a deleted user's passkeys and sessions.
// NewInvite reports the caller's mistakes as a *vault.InputError (a ttl
// over the maximum) or vault.ErrNoUser; any other error is internal.
type Inviter interface {
	NewInvite(ctx context.Context, userID string, ttl time.Duration) (string, error)
	ForgetUser(userID string) error
}

// Invite makes a one-time link for a user to enrol a passkey. The web UI
// records it in the ledger as an admin entry. Its errors go to AdminError
// as they are: a mistake of the caller's answers 400 (bad_ttl) or 404
// (no_user), anything else 500 with its text only in the log.
func (a LocalAdmin) Invite(ctx context.Context, r AdminInviteRequest) (AdminInviteResponse, error) {
	if a.Invites == nil {
		return AdminInviteResponse{}, newError(http.StatusNotImplemented, "no_web_ui", "this vault serves no web UI to enrol a passkey in")
	}
	link, err := a.Invites.NewInvite(ctx, r.User, r.TTL)
	if err != nil {
		return AdminInviteResponse{}, err
	}
	a.Log.Info("admin action", "action", "invite", "user", r.User)
	return AdminInviteResponse{Link: link}, nil
}

// RotateKeys rotates the master keyset online (ingest carries on) and
// records it in the ledger, kinds and ids only. An interrupted rotation is
// finished, and recorded as such. It runs to the end even if the asker
// goes away (a rotation stopped half-way is resumable, but is left
// half-way until then).
func (a LocalAdmin) RotateKeys(ctx context.Context) (vault.RotateResult, error) {
	if a.Root == nil {
		return vault.RotateResult{}, errors.New("no root key to wrap the rotated master")
	}
	ctx = context.WithoutCancel(ctx)
	res, err := a.Vault.RotateMaster(ctx, a.Root, nil)
	if err != nil {
		// A rotation another replica runs is not this one's to record.
		if p, perr := a.Vault.PendingRotation(ctx); perr == nil && p != nil && !errors.Is(err, vault.ErrRotationBusy) {
			a.record("key-rotate", "", fmt.Sprintf("interrupted: target %d", p.Target))
		}
		return res, err
	}
	a.Log.Info("admin action", "action", "key-rotate", "previous", res.Previous, "target", res.Target, "rewrapped", res.Rewrapped, "resumed", res.Resumed)
	return res, a.record("key-rotate", "", RotationDetail(res))
}

// RotationDetail is a rotation's ledger detail: key ids and counts only.
func RotationDetail(res vault.RotateResult) string {
	return fmt.Sprintf("master %d -> %d, %d patient keys re-wrapped, %d patients, resumed=%v", res.Previous, res.Target, res.Rewrapped, res.Patients, res.Resumed)
}

// RewriteRecords rewrites the records not in the current format, online
// (ingest carries on), and records it in the ledger, counts only. It runs
// to the end even if the asker goes away; one cut short (a crash) is
// finished by running it again, and is recorded with what it did. Each
// committed transaction is logged at info level with the totals so far.
func (a LocalAdmin) RewriteRecords(ctx context.Context, o vault.RewriteOptions) (vault.RewriteResult, error) {
	ctx = context.WithoutCancel(ctx)
	progress := o.Progress
	o.Progress = func(r vault.RewriteResult) {
		a.Log.Info("records rewrite progress", "rewritten", r.Rewritten, "current", r.Current, "patients", r.Patients, "batches", r.Batches)
		if progress != nil {
			progress(r)
		}
	}
	res, err := a.Vault.RewriteRecords(ctx, o)
	detail := fmt.Sprintf("%d records rewritten, %d already current, %d patients", res.Rewritten, res.Current, res.Patients)
	if err != nil {
		if res.Rewritten > 0 {
			a.record("records-rewrite", "", "interrupted: "+detail)
		}
		return res, err
	}
	a.Log.Info("admin action", "action", "records-rewrite", "rewritten", res.Rewritten, "current", res.Current, "patients", res.Patients)
	return res, a.record("records-rewrite", "", detail)
}

// RecordStatus counts the records by format.
func (a LocalAdmin) RecordStatus(ctx context.Context) (vault.RecordStatus, error) {
	return a.Vault.RecordStatus(ctx)
}

// KeyStatus reports the keys (ids and counts only).
func (a LocalAdmin) KeyStatus(ctx context.Context) (vault.KeyStatus, error) {
	return a.Vault.KeyStatus(ctx)
}

// Backup snapshots the database. It is logged, not a ledger entry: writing
// an entry would change what is being copied.
//
// The snapshot is first copied to a file in the spool directory at
// local-disk speed, and then streamed: streaming to a slow client straight
// from the store would hold the store's snapshot (a read transaction) open
// all that time, and a long-open snapshot holds up the store's own upkeep
// (growing its file, the compaction after a patient's deletion).
func (a LocalAdmin) Backup(w io.Writer, size func(int64)) (int64, error) {
	if a.Store == nil {
		return 0, errors.New("no store to back up")
	}
	dir := a.SpoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "backup-*.partial")
	if err != nil {
		return 0, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	n, err := a.Store.Backup(f, nil)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if size != nil {
		size(n)
	}
	m, err := io.Copy(w, f)
	if err == nil && m != n {
		err = fmt.Errorf("the snapshot copy stopped after %d of %d bytes", m, n)
	}
	if err == nil {
		a.Log.Info("admin action", "action", "backup", "bytes", n)
	}
	return m, err
}

// record appends an admin entry naming the user it concerns.
func (a LocalAdmin) record(action, target, detail string) error {
	if _, err := a.Ledger.Append(consent.NewAdmin(action, target, detail, time.Now())); err != nil {
		return fmt.Errorf("the action was done but its ledger entry failed: %v", err)
	}
	return nil
}

func (a LocalAdmin) AddUser(ctx context.Context, r AdminUserRequest) (AdminUserResponse, error) {
	u, err := a.Vault.CreateUser(ctx, vault.NewUser{Role: r.Role, Name: r.Name, Organization: r.Organization, TimeZone: r.TimeZone})
	if err != nil {
		return AdminUserResponse{}, err
	}
	a.Log.Info("admin action", "action", "user-add", "user", u.ID, "role", u.Role)
	return AdminUserResponse{ID: u.ID}, a.record("user-add", u.ID, u.Role)
}

func adminUser(u vault.User) AdminUser {
	return AdminUser{ID: u.ID, Role: u.Role, Name: u.Name, Organization: u.Organization, TimeZone: u.TimeZone, Created: u.Created}
}

// Users lists accounts for the admin's terminal. It is a read, not an
// admin entry in the ledger; the log says only that it happened.
func (a LocalAdmin) Users(ctx context.Context, role string) ([]AdminUser, error) {
	roles := []string{role}
	if role == "" {
		roles = []string{vault.RolePatient, vault.RoleClinician}
	}
	out := []AdminUser{}
	for _, r := range roles {
		us, err := a.Vault.Users(ctx, r)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			out = append(out, adminUser(u))
		}
	}
	a.Log.Info("admin action", "action", "user-list", "role", role, "users", len(out))
	return out, nil
}

// UserDetail is one account with its tokens and how many grants it gave
// (a patient) or received (a clinician).
func (a LocalAdmin) UserDetail(ctx context.Context, id string) (AdminUserDetail, error) {
	u, err := a.Vault.User(ctx, id)
	if err != nil {
		return AdminUserDetail{}, err
	}
	toks, err := a.Vault.Tokens(ctx, id)
	if err != nil {
		return AdminUserDetail{}, err
	}
	d := AdminUserDetail{AdminUser: adminUser(u), Tokens: []AdminTokenInfo{}}
	for _, t := range toks {
		d.Tokens = append(d.Tokens, AdminTokenInfo{ID: t.ID, Kind: t.Kind, Created: t.Created, Expires: t.Expires, LastUsed: t.LastUsed})
	}
	patient, clinician := id, ""
	if u.Role == vault.RoleClinician {
		patient, clinician = "", id
	}
	gs, err := a.Ledger.Grants(patient, clinician)
	if err != nil {
		return AdminUserDetail{}, err
	}
	now := time.Now()
	for i := range gs {
		d.Grants++
		if gs[i].Active(now) {
			d.ActiveGrants++
		}
	}
	a.Log.Info("admin action", "action", "user-show", "user", id)
	return d, nil
}

func (a LocalAdmin) DeleteUser(ctx context.Context, id string) error {
	if vault.RoleOf(id) != vault.RolePatient {
		return &vault.InputError{Code: "bad_user", Message: "only patients can be deleted for now"}
	}
	// Their grants end first, then the crypto-shred, then the ledger entry:
	// the same steps as the web UI's account deletion (consent.DeletePatient).
	err := consent.DeletePatient(ctx, a.Vault, a.Ledger, "admin", id, time.Now())
	if err != nil {
		return err
	}
	a.Log.Info("admin action", "action", "user-delete", "user", id)
	if a.Invites != nil {
		// Her web sessions end now, and her passkey records go.
		if err := a.Invites.ForgetUser(id); err != nil {
			a.Log.Error("web records of a deleted patient remain", "user", id, "cause", err.Error())
		}
	}
	return nil
}

func (a LocalAdmin) MintToken(ctx context.Context, r AdminTokenRequest) (AdminTokenResponse, error) {
	secret, t, err := a.Vault.MintToken(ctx, r.User, r.Kind, r.TTL)
	if err != nil {
		return AdminTokenResponse{}, err
	}
	a.Log.Info("admin action", "action", "token-mint", "user", t.UserID, "kind", t.Kind, "token_id", t.ID)
	return AdminTokenResponse{Token: secret, ID: t.ID, Expires: t.Expires}, a.record("token-mint", t.UserID, t.Kind+" "+t.ID)
}

// RebuildLedgerIndex replaces the grant index with a replay of the log.
// On PostgreSQL every other replica rebuilds its own on the rebuild's
// event (consent.Ledger.RebuiltElsewhere).
func (a LocalAdmin) RebuildLedgerIndex() (int, error) {
	n, err := a.Ledger.Rebuild()
	if err != nil {
		return 0, err
	}
	a.Log.Info("admin action", "action", "ledger-rebuild", "grants", n)
	return n, a.record("ledger-rebuild", "", fmt.Sprint(n, " grants"))
}

// Import imports a file into a patient's records, as POST /api/v1/imports
// does, and records it as an admin entry (format and counts only).
func (a LocalAdmin) Import(ctx context.Context, r AdminImportRequest, body io.Reader) (importer.Result, error) {
	if a.Importers == nil {
		return importer.Result{}, newError(http.StatusBadRequest, "no_importers", "this vault takes no imports")
	}
	var f importer.Format
	if r.Format != "" {
		var ok bool
		if f, ok = a.Importers.Lookup(r.Format); !ok {
			return importer.Result{}, newError(http.StatusBadRequest, "bad_format", "format must be one of %s, or left out to be recognised", strings.Join(a.Importers.Names(), ", "))
		}
	}
	var src importer.Source
	if file, ok := body.(*os.File); ok {
		src = importer.File{F: file}
	} else {
		dir := a.SpoolDir
		if dir == "" {
			dir = os.TempDir()
		}
		sp, err := importer.Spool(body, dir, DefaultMaxImportBytes)
		if errors.Is(err, importer.ErrTooLarge) {
			return importer.Result{}, newError(http.StatusRequestEntityTooLarge, "body_too_large", "the file is larger than the import limit of %d bytes", int64(DefaultMaxImportBytes))
		}
		if err != nil {
			return importer.Result{}, err
		}
		defer sp.Close()
		src = sp
	}
	res, err := runImport(ctx, a.Vault, a.Importers, r.Patient, f, r.DateOrder, src)
	if err != nil {
		if res.Accepted+res.Duplicates > 0 {
			// Part of it is stored: that is on the record too.
			a.record("import", r.Patient, fmt.Sprintf("%s: incomplete, %d of %d readings stored", res.Format, res.Accepted+res.Duplicates, res.Readings))
		}
		return res, err
	}
	a.Log.Info("admin action", "action", "import", "user", r.Patient, "format", res.Format, "accepted", res.Accepted, "duplicates", res.Duplicates)
	return res, a.record("import", r.Patient, fmt.Sprintf("%s: %d accepted, %d duplicates, %d skipped", res.Format, res.Accepted, res.Duplicates, res.Skipped))
}

// LedgerKey is the log's verifier key, for clients to pin.
func (a LocalAdmin) LedgerKey() (string, error) { return a.Ledger.VerifierKey(), nil }

func (a LocalAdmin) VerifyLedger(r AdminVerifyRequest) (AdminVerifyResponse, error) {
	res, err := a.Ledger.Verify(r.Checkpoint)
	if err != nil {
		return AdminVerifyResponse{}, err
	}
	out := AdminVerifyResponse{Size: res.Size, Checkpoints: res.Checkpoints, LatestSize: res.Latest.Size, VerifierKey: a.Ledger.VerifierKey(), SignedGrants: res.SignedGrants, ConfirmedKeys: res.ConfirmedKeys}
	if res.Prior != nil {
		out.PriorSize = &res.Prior.Size
	}
	a.Log.Info("admin action", "action", "ledger-verify", "size", res.Size)
	return out, nil
}

// AdminError turns an admin failure into an API error: an *Error as it
// is, a caller's mistake (vault.InputError, an unknown user) as a 4xx with
// its own message, a failed ledger verification as 409 with what failed;
// anything else is internal (500, its text only in the log).
func AdminError(err error) *Error {
	var ae *Error
	var ie *vault.InputError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &ie):
		return newError(http.StatusBadRequest, ie.Code, "%s", ie.Message)
	case errors.Is(err, vault.ErrNoUser), errors.Is(err, vault.ErrNoPatient):
		return newError(http.StatusNotFound, "no_user", "no such user")
	case errors.Is(err, ErrNoClient):
		return newError(http.StatusNotFound, "no_client", "no such OAuth client (see vault admin client list)")
	case errors.Is(err, vault.ErrRotationBusy):
		return newError(http.StatusConflict, "rotation_busy", "%s", err.Error())
	}
	var te *consent.TamperError
	if errors.As(err, &te) {
		return newError(http.StatusConflict, "ledger_tampered", "%s", te.Error())
	}
	return internal(err)
}

// NewAdmin serves the admin actions on the 0600 unix socket in DIR. The
// socket's file mode is its only authentication.
func NewAdmin(ops AdminOps, log *slog.Logger) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(log)
	e.POST("/admin/users", func(c echo.Context) error {
		var r AdminUserRequest
		if err := c.Bind(&r); err != nil {
			return newError(http.StatusBadRequest, "bad_request", "the request is not valid JSON")
		}
		out, err := ops.AddUser(c.Request().Context(), r)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusCreated, out)
	})
	e.GET("/admin/users", func(c echo.Context) error {
		out, err := ops.Users(c.Request().Context(), c.QueryParam("role"))
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.GET("/admin/users/:id", func(c echo.Context) error {
		out, err := ops.UserDetail(c.Request().Context(), c.Param("id"))
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.DELETE("/admin/users/:id", func(c echo.Context) error {
		if err := ops.DeleteUser(c.Request().Context(), c.Param("id")); err != nil {
			return AdminError(err)
		}
		return c.NoContent(http.StatusNoContent)
	})
	e.POST("/admin/tokens", func(c echo.Context) error {
		var r AdminTokenRequest
		if err := c.Bind(&r); err != nil {
			return newError(http.StatusBadRequest, "bad_request", "the request is not valid JSON")
		}
		out, err := ops.MintToken(c.Request().Context(), r)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusCreated, out)
	})
	e.POST("/admin/import", func(c echo.Context) error {
		http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(importReadTimeout))
		out, err := ops.Import(c.Request().Context(), AdminImportRequest{Patient: c.QueryParam("patient"), Format: c.QueryParam("format"), DateOrder: c.QueryParam("date_order")}, c.Request().Body)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusCreated, out)
	})
	e.GET("/admin/backup", func(c echo.Context) error {
		w := c.Response()
		started := false
		_, err := ops.Backup(w, func(n int64) {
			w.Header().Set(echo.HeaderContentType, "application/octet-stream")
			w.Header().Set(echo.HeaderContentLength, strconv.FormatInt(n, 10))
			w.WriteHeader(http.StatusOK)
			started = true
		})
		if err != nil && started {
			// The length promised is not met: the client sees a short body.
			log.Error("backup stream failed", "cause", err.Error())
			panic(http.ErrAbortHandler)
		}
		if err != nil {
			return AdminError(err)
		}
		return nil
	})
	e.POST("/admin/invites", func(c echo.Context) error {
		var r AdminInviteRequest
		if err := c.Bind(&r); err != nil {
			return newError(http.StatusBadRequest, "bad_request", "the request is not valid JSON")
		}
		out, err := ops.Invite(c.Request().Context(), r)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusCreated, out)
	})
	e.POST("/admin/keys/rotate", func(c echo.Context) error {
		out, err := ops.RotateKeys(c.Request().Context())
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.POST("/admin/records/rewrite", func(c echo.Context) error {
		var o vault.RewriteOptions
		if q := c.QueryParam("batch"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 || n > vault.MaxRewriteBatch {
				return newError(http.StatusBadRequest, "bad_request", "batch must be a whole number of records from 1 to %d", vault.MaxRewriteBatch)
			}
			o.Batch = n
		}
		out, err := ops.RewriteRecords(c.Request().Context(), o)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.GET("/admin/records/status", func(c echo.Context) error {
		out, err := ops.RecordStatus(c.Request().Context())
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.GET("/admin/keys/status", func(c echo.Context) error {
		out, err := ops.KeyStatus(c.Request().Context())
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.POST("/admin/ledger/verify", func(c echo.Context) error {
		var r AdminVerifyRequest
		if err := c.Bind(&r); err != nil {
			return newError(http.StatusBadRequest, "bad_request", "the request is not valid JSON")
		}
		out, err := ops.VerifyLedger(r)
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, out)
	})
	e.POST("/admin/ledger/rebuild", func(c echo.Context) error {
		n, err := ops.RebuildLedgerIndex()
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, map[string]int{"grants": n})
	})
	e.GET("/admin/ledger/key", func(c echo.Context) error {
		k, err := ops.LedgerKey()
		if err != nil {
			return AdminError(err)
		}
		return c.JSON(http.StatusOK, map[string]string{"verifier_key": k})
	})
	routeOAuthAdmin(e, ops)
	e.GET("/admin/ping", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	return e
}
