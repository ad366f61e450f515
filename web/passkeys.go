package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/jupyterhealth/vault/consent"
	"github.com/jupyterhealth/vault/vault"
)

// InvitePrefix starts every invite token, so a secret scanner can spot one.
const InvitePrefix = "vi_"

// NewInvite makes a one-time enrolment link for a user: BaseURL +
// "/enrol/" + a token of 256 random bits. Only the token's SHA-256 is
// stored. It expires after ttl (DefaultInviteTTL when ttl <= 0, at most
// MaxInviteTTL) and works once. Making one is an "invite" admin entry in
// the ledger.
//
// The caller's mistakes are typed: a ttl over MaxInviteTTL is a
// *vault.InputError (code bad_ttl), an unknown user vault.ErrNoUser. Any
// other error (the store's, the ledger's) is internal: its text is for the
// log, not for whoever asked.
func (s *Server) NewInvite(ctx context.Context, userID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultInviteTTL
	}
	if ttl > MaxInviteTTL {
		return "", &vault.InputError{Code: "bad_ttl", Message: fmt.Sprintf("an invite may last at most %v", MaxInviteTTL)}
	}
	if _, err := s.vault.User(ctx, userID); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token := InvitePrefix + base64.RawURLEncoding.EncodeToString(raw)
	h := hashOf(token)
	now := s.now().UTC()
	if _, err := s.ledger.Append(consent.NewAdmin("invite", userID, "", now)); err != nil {
		return "", fmt.Errorf("invite not recorded in the ledger: %v", err)
	}
	if err := s.invites.put(context.Background(), invite{Hash: h[:], UserID: userID, Created: now, Expires: now.Add(ttl)}, now); err != nil {
		return "", fmt.Errorf("invite not stored: %v", err)
	}
	s.log.Info("enrolment invite made", "user", userID, "expires", now.Add(ttl))
	return s.origin + "/enrol/" + token, nil
}

// InviteUsable reports whether a link NewInvite made can still be used by
// userID: not used, not expired. The demo keeps its links across restarts
// while they work.
func (s *Server) InviteUsable(link, userID string) bool {
	token, ok := strings.CutPrefix(link, s.origin+"/enrol/")
	if !ok {
		return false
	}
	inv, err := s.invites.get(context.Background(), hashOf(token), s.now())
	return err == nil && inv.UserID == userID
}

// waUser is the library's view of a user.
type waUser struct {
	handle        []byte
	name, display string
	creds         []webauthn.Credential
}

func (u *waUser) WebAuthnID() []byte                         { return u.handle }
func (u *waUser) WebAuthnName() string                       { return u.name }
func (u *waUser) WebAuthnDisplayName() string                { return u.display }
func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// registrant builds the user for a registration: their account's name for
// the authenticator's account picker (never stored by the vault), their
// handle (the existing one, or a new random one for a first passkey), and
// their passkeys, which the authenticator is told not to duplicate.
func (s *Server) registrant(ctx context.Context, userID string) (*waUser, error) {
	u, err := s.vault.User(ctx, userID)
	if err != nil {
		return nil, err
	}
	recs, err := s.creds.list(ctx, userID)
	if err != nil {
		return nil, err
	}
	wu := &waUser{name: u.Name, display: u.Name}
	if wu.name == "" {
		wu.name = u.ID
	}
	for _, r := range recs {
		wu.creds = append(wu.creds, r.webauthnCredential())
		if wu.handle == nil {
			wu.handle = r.Handle
		}
	}
	if wu.handle == nil {
		wu.handle = make([]byte, 32)
		rand.Read(wu.handle)
	}
	return wu, nil
}

// invitee is the user a usable invite enrols: errInviteInvalid when the
// invite is unknown, expired or used, or its user is gone.
func (s *Server) invitee(ctx context.Context, hash [32]byte) (vault.User, error) {
	inv, err := s.invites.get(ctx, hash, s.now())
	if errors.Is(err, errInvite) {
		return vault.User{}, errInviteInvalid
	}
	if err != nil {
		return vault.User{}, unavailable("Try again shortly", "The enrolment link could not be checked just now. Try again shortly.", err)
	}
	u, err := s.vault.User(ctx, inv.UserID)
	if errors.Is(err, vault.ErrNoUser) {
		return vault.User{}, errInviteInvalid
	}
	if err != nil {
		return vault.User{}, err
	}
	return u, nil
}

func (s *Server) beginRegistration(ctx context.Context, w http.ResponseWriter, c ceremony, wu *waUser) error {
	opts := []webauthn.RegistrationOption{
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(webauthn.Credentials(wu.creds).CredentialDescriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	}
	creation, sd, err := s.wa.BeginRegistration(wu, opts...)
	if err != nil {
		return fmt.Errorf("begin registration: %w", err)
	}
	c.Data, c.Handle = *sd, wu.handle
	id, err := s.cers.put(ctx, c)
	if err != nil {
		return err
	}
	s.setCookie(w, CeremonyCookie, id, int(CeremonyTimeout/time.Second))
	writeJSON(w, http.StatusOK, creation)
	return nil
}

type enrolBeginRequest struct {
	Token string `json:"token"`
	Label string `json:"label"`
}

// enrolBegin starts enrolment from an invite: the invite must be usable
// now (it is claimed only when the passkey is made).
func (s *Server) enrolBegin(w http.ResponseWriter, r *http.Request, _ session) error {
	var req enrolBeginRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	label, ok := cleanLabel(req.Label)
	if !ok {
		return errBadLabel
	}
	h := hashOf(req.Token)
	u, err := s.invitee(r.Context(), h)
	if err != nil {
		return err
	}
	wu, err := s.registrant(r.Context(), u.ID)
	if err != nil {
		return err
	}
	return s.beginRegistration(r.Context(), w, ceremony{Kind: "enrol", UserID: u.ID, Label: label, Invite: h}, wu)
}

var (
	errInviteInvalid = refuse(http.StatusGone, "invite_invalid", "Enrolment link not valid", "This enrolment link has expired or has been used already. Ask your vault's administrator for a new one.")
	errBadLabel      = refuse(http.StatusBadRequest, "bad_label", "Request refused", fmt.Sprintf("A passkey's name is at most %d characters, without control characters.", MaxLabelLength))
	errTooManyKeys   = refuse(http.StatusConflict, "too_many_passkeys", "Request refused", fmt.Sprintf("An account can have at most %d passkeys. Remove one first.", MaxPasskeysPerUser))
	errPasskeyStale  = refuse(http.StatusBadRequest, "no_ceremony", "Request refused", "This passkey request has expired or was already used. Start again.")
)

// passkeyRefused is a registration the vault does not accept, and why.
func passkeyRefused(msg string) *publicError {
	return refuse(http.StatusBadRequest, "passkey_refused", "Request refused", msg)
}

// finishRegistration checks the browser's attestation against a ceremony.
func (s *Server) finishRegistration(w http.ResponseWriter, r *http.Request, kind string) (ceremony, *webauthn.Credential, error) {
	c, err := s.takeCeremony(w, r, kind, errPasskeyStale)
	if err != nil {
		return c, nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(r.Body)
	if err != nil {
		s.log.Info("web registration refused", "kind", kind, "user", c.UserID, "reason", webauthnReason(err))
		return c, nil, refuse(http.StatusBadRequest, "bad_credential", "Request refused", "The passkey response could not be read. Try again.")
	}
	cred, err := s.wa.CreateCredential(&waUser{handle: c.Handle}, c.Data, parsed)
	if err != nil {
		s.log.Info("web registration refused", "kind", kind, "user", c.UserID, "reason", webauthnReason(err))
		return c, nil, passkeyRefused("The passkey could not be verified. It must be a passkey saved on your device that asks for your fingerprint, face or PIN.")
	}
	// The library verifies UV against the session; check the flag and a
	// discoverable credential again here, where it is policy.
	if !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() {
		return c, nil, passkeyRefused("The passkey did not verify you (fingerprint, face or PIN).")
	}
	if rk := parsed.ClientExtensionResults.CredProps; rk != nil && rk.RK != nil && !*rk.RK {
		return c, nil, passkeyRefused("The authenticator made a credential that it can't find by itself; the vault needs a passkey.")
	}
	return c, cred, nil
}

// register logs a new passkey in the ledger and then stores it for
// sign-in, so every usable passkey has its passkey-registered entry.
func (s *Server) register(ctx context.Context, c ceremony, cred *webauthn.Credential) (credRecord, error) {
	now := s.now().UTC()
	e := consent.New(consent.KindPasskey, c.UserID, now)
	switch vault.RoleOf(c.UserID) {
	case vault.RolePatient:
		e.Patient = c.UserID
	case vault.RoleClinician:
		e.Clinician = c.UserID
	}
	e.Passkey = &consent.Passkey{CredentialID: cred.ID, PublicKey: cred.PublicKey, RPID: s.rpID, Origin: s.origin}
	if _, err := s.creds.get(ctx, cred.ID); err == nil {
		return credRecord{}, errCredExists
	}
	idx, err := s.ledger.Append(e)
	if err != nil {
		return credRecord{}, fmt.Errorf("ledger: %w", err)
	}
	rec := credRecord{
		ID: cred.ID, UserID: c.UserID, Handle: c.Handle, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, Flags: cred.Flags.MsgpByte(), AAGUID: cred.Authenticator.AAGUID,
		Format: cred.AttestationFormat, Label: c.Label, Created: now, LedgerIndex: idx,
	}
	for _, t := range cred.Transport {
		rec.Transports = append(rec.Transports, string(t))
	}
	if rec.Label == "" {
		rec.Label = "Passkey added " + now.Format("2 Jan 2006")
	}
	if err := s.creds.add(ctx, &rec); err != nil {
		return credRecord{}, err
	}
	s.log.Info("passkey registered", "user", c.UserID, "ledger_index", idx)
	return rec, nil
}

// enrolFinish makes the passkey, uses up the invite and signs the user in.
func (s *Server) enrolFinish(w http.ResponseWriter, r *http.Request, _ session) error {
	c, cred, err := s.finishRegistration(w, r, "enrol")
	if err != nil {
		return err
	}
	_, row, err := s.invites.claim(r.Context(), c.Invite, s.now())
	if errors.Is(err, errInvite) {
		return errInviteInvalid
	}
	if err != nil {
		return fmt.Errorf("claim invite: %w", err)
	}
	rec, err := s.register(r.Context(), c, cred)
	if err != nil {
		if rerr := s.invites.release(r.Context(), row); rerr != nil {
			s.log.Error("invite release failed", "user", c.UserID, "cause", rerr.Error())
		}
		return registerError(err)
	}
	if err := s.startSession(w, r, session{UserID: c.UserID, Role: vault.RoleOf(c.UserID), Credential: rec.ID}); err != nil {
		return unavailable("Not signed in", "Your passkey is saved, but you could not be signed in just now. Sign in with it shortly.", err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/"})
	return nil
}

// registerError is what a failed register answers.
func registerError(err error) error {
	switch {
	case errors.Is(err, errCredExists):
		return refuse(http.StatusConflict, "passkey_exists", "Request refused", "This passkey is registered already.")
	case errors.Is(err, errTooMany):
		return errTooManyKeys
	}
	return unavailable("Not saved", "The passkey could not be saved. Nothing was changed; try again shortly.", err)
}

type addBeginRequest struct {
	Label string `json:"label"`
}

// addPasskeyBegin starts adding a passkey to the signed-in account.
func (s *Server) addPasskeyBegin(w http.ResponseWriter, r *http.Request, sess session) error {
	var req addBeginRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	label, ok := cleanLabel(req.Label)
	if !ok {
		return errBadLabel
	}
	wu, err := s.registrant(r.Context(), sess.UserID)
	if err != nil {
		return fmt.Errorf("registrant: %w", err)
	}
	if len(wu.creds) >= MaxPasskeysPerUser {
		return errTooManyKeys
	}
	return s.beginRegistration(r.Context(), w, ceremony{Kind: "add", UserID: sess.UserID, Label: label, Session: hashOf(sess.CSRF)}, wu)
}

func (s *Server) addPasskeyFinish(w http.ResponseWriter, r *http.Request, sess session) error {
	c, cred, err := s.finishRegistration(w, r, "add")
	if err != nil {
		return err
	}
	if c.UserID != sess.UserID || c.Session != hashOf(sess.CSRF) {
		return errPasskeyStale
	}
	if _, err := s.register(r.Context(), c, cred); err != nil {
		return registerError(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/passkeys?added=1"})
	return nil
}

// signinBegin starts a discoverable sign-in: no user is named, the
// authenticator offers the passkeys it holds for this site. Nothing is
// stored: the session data goes to the browser sealed, in the ceremony
// cookie (signinChallenge), and lives SignInTimeout.
func (s *Server) signinBegin(w http.ResponseWriter, r *http.Request, _ session) error {
	// The body may name where to go once signed in ({"next": "/path"}); an
	// unsafe path is dropped, not refused, and the home page is used.
	var body struct {
		Next string `json:"next"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return errBadJSON.because(err)
	}
	next, _ := safeNext(body.Next)
	assertion, sd, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired), withLoginTimeout(SignInTimeout))
	if err != nil {
		return fmt.Errorf("begin login: %w", err)
	}
	v, err := s.cers.sealSignin(*sd, next)
	if err != nil {
		return fmt.Errorf("seal sign-in challenge: %w", err)
	}
	s.setCookie(w, CeremonyCookie, v, int(SignInTimeout/time.Second))
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

// withLoginTimeout is the timeout the browser is told (the library also
// makes it the session data's expiry).
func withLoginTimeout(d time.Duration) webauthn.LoginOption {
	return func(o *protocol.PublicKeyCredentialRequestOptions) error {
		o.Timeout = int(d / time.Millisecond)
		return nil
	}
}

// errSigninStale is a sign-in finish without a live challenge: none,
// expired, or answered already.
var errSigninStale = refuse(http.StatusBadRequest, "no_ceremony", "Not signed in", "This sign-in request has expired or was already used. Start again.")

// errSigninRefused is every refused passkey sign-in: which check failed
// goes only to the log.
var errSigninRefused = refuse(http.StatusUnauthorized, "signin_refused", "Not signed in", "That passkey could not sign you in. Use a passkey you registered with this vault, and unlock it with your fingerprint, face or PIN.")

// signinFinish checks the assertion and starts a session.
func (s *Server) signinFinish(w http.ResponseWriter, r *http.Request, _ session) error {
	c, err := s.cers.openSignin(cookieValue(r, CeremonyCookie))
	s.clearCookie(w, CeremonyCookie)
	if err != nil {
		s.log.Info("web sign-in refused", "reason", err.Error())
		s.signInFailed("bad_challenge")
		return errSigninStale
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(r.Body)
	if err != nil {
		s.log.Info("web sign-in refused", "reason", webauthnReason(err))
		s.signInFailed("passkey")
		return &publicError{Status: http.StatusBadRequest, Code: "bad_assertion", Title: errSigninRefused.Title, Message: errSigninRefused.Message}
	}
	var rec credRecord
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		var err error
		if rec, err = s.creds.get(r.Context(), rawID); err != nil {
			return nil, errNoCredential
		}
		if !bytes.Equal(rec.Handle, userHandle) {
			return nil, errNoCredential
		}
		return &waUser{handle: rec.Handle, creds: []webauthn.Credential{rec.webauthnCredential()}}, nil
	}
	_, cred, err := s.wa.ValidatePasskeyLogin(handler, c.Data, parsed)
	if err != nil {
		s.log.Info("web sign-in refused", "reason", webauthnReason(err))
		s.signInFailed("passkey")
		return errSigninRefused
	}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		s.signInFailed("passkey")
		return errSigninRefused
	}
	// The assertion is good: spend its challenge, so no other answer to it
	// (this one replayed, or another the same authenticator made) signs
	// anyone in.
	if err := s.cers.spendSignin(r.Context(), c); err != nil {
		if errors.Is(err, errChallengeSpent) {
			s.log.Warn("web sign-in refused: challenge answered already", "user", rec.UserID)
			s.signInFailed("bad_challenge")
			return errSigninStale
		}
		return err
	}
	if _, err := s.vault.User(r.Context(), rec.UserID); err != nil {
		s.signInFailed("passkey")
		if !errors.Is(err, vault.ErrNoUser) {
			return err
		}
		return errSigninRefused
	}
	clone, err := s.noteUse(r.Context(), rec, cred, parsed)
	if err != nil {
		return fmt.Errorf("credential update: %w", err)
	}
	if err := s.startSession(w, r, session{UserID: rec.UserID, Role: vault.RoleOf(rec.UserID), Credential: rec.ID, CloneWarning: clone || rec.CloneWarning}); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	s.log.Info("web sign-in", "user", rec.UserID)
	next := "/"
	if c.Next != "" {
		next = c.Next
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": next})
	return nil
}

// noteUse records a verified assertion on the credential's record: its
// sign count and flags, and when it was last used. The library flags a
// count that did not go up (and is not 0 on both sides) as a possible
// clone. The vault lets the assertion through (the signature and user
// verification are good) but marks the passkey for good, logs it, and
// shows a warning; see docs/web.md for why it does not refuse. It reports
// whether this assertion raised the warning.
func (s *Server) noteUse(ctx context.Context, rec credRecord, cred *webauthn.Credential, parsed *protocol.ParsedCredentialAssertionData) (bool, error) {
	clone := cred.Authenticator.CloneWarning
	now := s.now().UTC()
	err := s.creds.modify(ctx, rec.UserID, rec.ID, func(c *credRecord) error {
		if clone && !c.CloneWarning {
			c.CloneWarning = true
		}
		if cred.Authenticator.SignCount > c.SignCount {
			c.SignCount = cred.Authenticator.SignCount
		}
		c.Flags = cred.Flags.MsgpByte()
		c.LastUsed = now
		return nil
	})
	if err != nil {
		return false, err
	}
	if clone {
		s.log.Warn("passkey sign count did not increase: possible cloned authenticator", "user", rec.UserID, "ledger_index", rec.LedgerIndex, "stored_count", rec.SignCount, "reported_count", parsed.Response.AuthenticatorData.Counter)
	}
	return clone, nil
}

// webauthnReason is a refusal's reason for the log: the library's error
// type and details, which hold no secret (no key, no signature bytes).
func webauthnReason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Type + ": " + pe.Details
	}
	return "unparsed"
}

// cleanLabel trims a passkey's name and checks it.
func cleanLabel(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxLabelLength {
		return "", false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return s, true
}

// readJSON decodes a JSON endpoint's body (errBadJSON when it is not the
// JSON expected).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadJSON.because(err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// stepUp is a passkey re-authentication inside a session, verified: the
// ceremony taken for it, the parsed assertion, and the passkey that made it
// (one of the user's own, with user verification).
type stepUp struct {
	c      ceremony
	parsed *protocol.ParsedCredentialAssertionData
	cred   *webauthn.Credential
	rec    credRecord
}

// stepUpRefusal is what a step-up ceremony answers when it fails.
type stepUpRefusal struct {
	what    string // for the log, such as "grant"
	code    string // the JSON error code of a refused assertion
	refused string // its message
	stale   string // the message when the ceremony is gone or not this session's
}

func (m stepUpRefusal) refusal(status int, code string) *publicError {
	return refuse(status, code, "Request refused", m.refused)
}

// finishStepUp takes the ceremony of kind for this session (want checks
// what it carries), and verifies the passkey's assertion against it.
func (s *Server) finishStepUp(w http.ResponseWriter, r *http.Request, sess session, kind string, want func(ceremony) bool, m stepUpRefusal) (stepUp, error) {
	stale := refuse(http.StatusBadRequest, "no_ceremony", "Request refused", m.stale)
	c, err := s.takeCeremony(w, r, kind, stale)
	if err != nil {
		return stepUp{}, err
	}
	if c.UserID != sess.UserID || c.Session != hashOf(sess.CSRF) || (want != nil && !want(c)) {
		return stepUp{}, stale
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(r.Body)
	if err != nil {
		s.log.Info("web "+m.what+" refused", "user", sess.UserID, "reason", webauthnReason(err))
		return stepUp{}, m.refusal(http.StatusBadRequest, "bad_assertion")
	}
	wu, err := s.signer(r.Context(), sess.UserID)
	if err != nil {
		return stepUp{}, fmt.Errorf("%s signer: %w", m.what, err)
	}
	cred, err := s.wa.ValidateLogin(wu, c.Data, parsed)
	if err != nil || !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		reason := "user not verified"
		if err != nil {
			reason = webauthnReason(err)
		}
		s.log.Info("web "+m.what+" refused", "user", sess.UserID, "reason", reason)
		return stepUp{}, m.refusal(http.StatusUnauthorized, m.code)
	}
	rec, err := s.creds.get(r.Context(), parsed.RawID)
	if err != nil || rec.UserID != sess.UserID {
		return stepUp{}, m.refusal(http.StatusUnauthorized, m.code)
	}
	return stepUp{c: c, parsed: parsed, cred: cred, rec: rec}, nil
}

// beginStepUp starts a passkey re-authentication inside a session over
// challenge: the user's own passkeys, user verification required, a
// one-use ceremony bound to this session (c carries what the finish
// needs). It writes the WebAuthn options; noPasskey says what to do for an
// account without a passkey.
func (s *Server) beginStepUp(ctx context.Context, w http.ResponseWriter, sess session, c ceremony, challenge []byte, what, noPasskey string) error {
	wu, err := s.signer(ctx, sess.UserID)
	switch {
	case errors.Is(err, errNoPasskey):
		return refuse(http.StatusConflict, "no_passkey", "Request refused", noPasskey)
	case err != nil:
		return fmt.Errorf("%s signer: %w", what, err)
	}
	assertion, sd, err := s.wa.BeginLogin(wu, webauthn.WithChallenge(challenge), webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return fmt.Errorf("begin %s assertion: %w", what, err)
	}
	c.Data, c.UserID, c.Session = *sd, sess.UserID, hashOf(sess.CSRF)
	id, err := s.cers.put(ctx, c)
	if err != nil {
		return err
	}
	s.setCookie(w, CeremonyCookie, id, int(CeremonyTimeout/time.Second))
	writeJSON(w, http.StatusOK, assertion)
	return nil
}

// takeCeremony takes the request's ceremony of a kind and clears its
// cookie; stale is the answer when there is none.
func (s *Server) takeCeremony(w http.ResponseWriter, r *http.Request, kind string, stale *publicError) (ceremony, error) {
	c, err := s.cers.take(r.Context(), cookieValue(r, CeremonyCookie), kind)
	s.clearCookie(w, CeremonyCookie)
	switch {
	case errors.Is(err, errNoCeremony):
		return c, stale
	case err != nil:
		return c, fmt.Errorf("take ceremony: %w", err)
	}
	return c, nil
}

// assertion is the verified assertion as the ledger stores it in the entry
// it signs, naming the passkey's passkey-registered entry.
func (su stepUp) assertion() *consent.Assertion {
	return &consent.Assertion{
		CredentialID:      bytes.Clone(su.parsed.RawID),
		PasskeyIndex:      su.rec.LedgerIndex,
		Nonce:             su.c.Nonce,
		AuthenticatorData: su.parsed.Raw.AssertionResponse.AuthenticatorData,
		ClientDataJSON:    su.parsed.Raw.AssertionResponse.ClientDataJSON,
		Signature:         su.parsed.Response.Signature,
	}
}
