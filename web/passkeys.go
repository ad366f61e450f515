package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
func (s *Server) NewInvite(userID string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultInviteTTL
	}
	if ttl > MaxInviteTTL {
		return "", fmt.Errorf("an invite may last at most %v", MaxInviteTTL)
	}
	if _, err := s.vault.User(userID); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token := InvitePrefix + base64.RawURLEncoding.EncodeToString(raw)
	h := hashOf(token)
	now := s.now().UTC()
	if _, err := s.ledger.Append(consent.NewAdmin("invite", userID, "", now)); err != nil {
		return "", fmt.Errorf("ledger: %v", err)
	}
	if err := s.invites.put(context.Background(), invite{Hash: h[:], UserID: userID, Created: now, Expires: now.Add(ttl)}, now); err != nil {
		return "", err
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
	u, err := s.vault.User(userID)
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

func (s *Server) beginRegistration(ctx context.Context, w http.ResponseWriter, c ceremony, wu *waUser) {
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
		s.internal(w, "begin registration", err)
		return
	}
	c.Data, c.Handle = *sd, wu.handle
	id, ok := s.putCeremony(ctx, w, c)
	if !ok {
		return
	}
	s.setCookie(w, CeremonyCookie, id, int(CeremonyTimeout/time.Second))
	writeJSON(w, http.StatusOK, creation)
}

type enrolBeginRequest struct {
	Token string `json:"token"`
	Label string `json:"label"`
}

// enrolBegin starts enrolment from an invite: the invite must be usable
// now (it is claimed only when the passkey is made).
func (s *Server) enrolBegin(w http.ResponseWriter, r *http.Request) {
	var req enrolBeginRequest
	if !readJSON(w, r, &req) {
		return
	}
	label, ok := cleanLabel(req.Label)
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "bad_label", fmt.Sprintf("A passkey's name is at most %d characters, without control characters.", MaxLabelLength))
		return
	}
	h := hashOf(req.Token)
	inv, err := s.invites.get(r.Context(), h, s.now())
	if err != nil {
		writeJSONError(w, http.StatusGone, "invite_invalid", inviteInvalidMessage)
		return
	}
	wu, err := s.registrant(r.Context(), inv.UserID)
	if err != nil {
		writeJSONError(w, http.StatusGone, "invite_invalid", inviteInvalidMessage)
		return
	}
	s.beginRegistration(r.Context(), w, ceremony{Kind: "enrol", UserID: inv.UserID, Label: label, Invite: h}, wu)
}

const inviteInvalidMessage = "This enrolment link has expired or has been used already. Ask your vault's administrator for a new one."

// finishRegistration checks the browser's attestation against a ceremony.
func (s *Server) finishRegistration(w http.ResponseWriter, r *http.Request, kind string) (ceremony, *webauthn.Credential, bool) {
	c, ok := s.takeCeremony(w, r, kind, "This passkey request has expired or was already used. Start again.")
	if !ok {
		return c, nil, false
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(r.Body)
	if err != nil {
		s.log.Info("web registration refused", "kind", kind, "user", c.UserID, "reason", webauthnReason(err))
		writeJSONError(w, http.StatusBadRequest, "bad_credential", "The passkey response could not be read. Try again.")
		return c, nil, false
	}
	cred, err := s.wa.CreateCredential(&waUser{handle: c.Handle}, c.Data, parsed)
	if err != nil {
		s.log.Info("web registration refused", "kind", kind, "user", c.UserID, "reason", webauthnReason(err))
		writeJSONError(w, http.StatusBadRequest, "passkey_refused", "The passkey could not be verified. It must be a passkey saved on your device that asks for your fingerprint, face or PIN.")
		return c, nil, false
	}
	// The library verifies UV against the session; check the flag and a
	// discoverable credential again here, where it is policy.
	if !parsed.Response.AttestationObject.AuthData.Flags.HasUserVerified() {
		writeJSONError(w, http.StatusBadRequest, "passkey_refused", "The passkey did not verify you (fingerprint, face or PIN).")
		return c, nil, false
	}
	if rk := parsed.ClientExtensionResults.CredProps; rk != nil && rk.RK != nil && !*rk.RK {
		writeJSONError(w, http.StatusBadRequest, "passkey_refused", "The authenticator made a credential that it can't find by itself; the vault needs a passkey.")
		return c, nil, false
	}
	return c, cred, true
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
func (s *Server) enrolFinish(w http.ResponseWriter, r *http.Request) {
	c, cred, ok := s.finishRegistration(w, r, "enrol")
	if !ok {
		return
	}
	_, row, err := s.invites.claim(r.Context(), c.Invite, s.now())
	if errors.Is(err, errInvite) {
		writeJSONError(w, http.StatusGone, "invite_invalid", inviteInvalidMessage)
		return
	}
	if err != nil {
		s.internal(w, "claim invite", err)
		return
	}
	rec, err := s.register(r.Context(), c, cred)
	if err != nil {
		if rerr := s.invites.release(r.Context(), row); rerr != nil {
			s.log.Error("invite release failed", "user", c.UserID, "cause", rerr.Error())
		}
		s.registerFailed(w, c, err)
		return
	}
	if err := s.startSession(w, r, session{UserID: c.UserID, Role: vault.RoleOf(c.UserID), Credential: rec.ID}); err != nil {
		s.log.Error("web session not started", "user", c.UserID, "cause", err.Error())
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "Your passkey is saved, but you could not be signed in just now. Sign in with it shortly.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/"})
}

func (s *Server) registerFailed(w http.ResponseWriter, c ceremony, err error) {
	switch {
	case errors.Is(err, errCredExists):
		writeJSONError(w, http.StatusConflict, "passkey_exists", "This passkey is registered already.")
	case errors.Is(err, errTooMany):
		writeJSONError(w, http.StatusConflict, "too_many_passkeys", fmt.Sprintf("An account can have at most %d passkeys. Remove one first.", MaxPasskeysPerUser))
	default:
		s.log.Error("passkey registration failed", "user", c.UserID, "cause", err.Error())
		writeJSONError(w, http.StatusServiceUnavailable, "unavailable", "The passkey could not be saved. Nothing was changed; try again shortly.")
	}
}

type addBeginRequest struct {
	Label string `json:"label"`
}

// addPasskeyBegin starts adding a passkey to the signed-in account.
func (s *Server) addPasskeyBegin(w http.ResponseWriter, r *http.Request, sess session) {
	var req addBeginRequest
	if !readJSON(w, r, &req) {
		return
	}
	label, ok := cleanLabel(req.Label)
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "bad_label", fmt.Sprintf("A passkey's name is at most %d characters, without control characters.", MaxLabelLength))
		return
	}
	wu, err := s.registrant(r.Context(), sess.UserID)
	if err != nil {
		s.internal(w, "registrant", err)
		return
	}
	if len(wu.creds) >= MaxPasskeysPerUser {
		writeJSONError(w, http.StatusConflict, "too_many_passkeys", fmt.Sprintf("An account can have at most %d passkeys. Remove one first.", MaxPasskeysPerUser))
		return
	}
	s.beginRegistration(r.Context(), w, ceremony{Kind: "add", UserID: sess.UserID, Label: label, Session: hashOf(sess.CSRF)}, wu)
}

func (s *Server) addPasskeyFinish(w http.ResponseWriter, r *http.Request, sess session) {
	c, cred, ok := s.finishRegistration(w, r, "add")
	if !ok {
		return
	}
	if c.UserID != sess.UserID || c.Session != hashOf(sess.CSRF) {
		writeJSONError(w, http.StatusBadRequest, "no_ceremony", "This passkey request has expired or was already used. Start again.")
		return
	}
	if _, err := s.register(r.Context(), c, cred); err != nil {
		s.registerFailed(w, c, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/passkeys?added=1"})
}

// signinBegin starts a discoverable sign-in: no user is named, the
// authenticator offers the passkeys it holds for this site.
func (s *Server) signinBegin(w http.ResponseWriter, r *http.Request) {
	assertion, sd, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		s.internal(w, "begin login", err)
		return
	}
	id, ok := s.putCeremony(r.Context(), w, ceremony{Kind: "signin", Data: *sd})
	if !ok {
		return
	}
	s.setCookie(w, CeremonyCookie, id, int(CeremonyTimeout/time.Second))
	writeJSON(w, http.StatusOK, assertion)
}

const signinRefused = "That passkey could not sign you in. Use a passkey you registered with this vault, and unlock it with your fingerprint, face or PIN."

// signinFinish checks the assertion and starts a session.
func (s *Server) signinFinish(w http.ResponseWriter, r *http.Request) {
	c, ok := s.takeCeremony(w, r, "signin", "This sign-in request has expired or was already used. Start again.")
	if !ok {
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(r.Body)
	if err != nil {
		s.log.Info("web sign-in refused", "reason", webauthnReason(err))
		s.signInFailed("passkey")
		writeJSONError(w, http.StatusBadRequest, "bad_assertion", signinRefused)
		return
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
		writeJSONError(w, http.StatusUnauthorized, "signin_refused", signinRefused)
		return
	}
	if !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		s.signInFailed("passkey")
		writeJSONError(w, http.StatusUnauthorized, "signin_refused", signinRefused)
		return
	}
	if _, err := s.vault.User(rec.UserID); err != nil {
		s.signInFailed("passkey")
		writeJSONError(w, http.StatusUnauthorized, "signin_refused", signinRefused)
		return
	}
	clone, err := s.noteUse(r.Context(), rec, cred, parsed)
	if err != nil {
		s.internal(w, "credential update", err)
		return
	}
	if err := s.startSession(w, r, session{UserID: rec.UserID, Role: vault.RoleOf(rec.UserID), Credential: rec.ID, CloneWarning: clone || rec.CloneWarning}); err != nil {
		s.internal(w, "start session", err)
		return
	}
	s.log.Info("web sign-in", "user", rec.UserID)
	writeJSON(w, http.StatusOK, map[string]string{"redirect": "/"})
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

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSONError(w, http.StatusBadRequest, "bad_json", "The request body is not the JSON this endpoint expects.")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// internal logs a failure's cause and tells the browser nothing more.
func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error("web internal error", "op", what, "cause", err.Error())
	writeJSONError(w, http.StatusInternalServerError, "internal", "Something went wrong on the vault. Try again shortly.")
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

// finishStepUp takes the ceremony of kind for this session (want checks
// what it carries), and verifies the passkey's assertion against it. On
// any failure it has written the answer and returns false.
func (s *Server) finishStepUp(w http.ResponseWriter, r *http.Request, sess session, kind string, want func(ceremony) bool, m stepUpRefusal) (stepUp, bool) {
	c, ok := s.takeCeremony(w, r, kind, m.stale)
	if !ok {
		return stepUp{}, false
	}
	if c.UserID != sess.UserID || c.Session != hashOf(sess.CSRF) || (want != nil && !want(c)) {
		writeJSONError(w, http.StatusBadRequest, "no_ceremony", m.stale)
		return stepUp{}, false
	}
	parsed, err := protocol.ParseCredentialRequestResponseBody(r.Body)
	if err != nil {
		s.log.Info("web "+m.what+" refused", "user", sess.UserID, "reason", webauthnReason(err))
		writeJSONError(w, http.StatusBadRequest, "bad_assertion", m.refused)
		return stepUp{}, false
	}
	wu, err := s.signer(r.Context(), sess.UserID)
	if err != nil {
		s.internal(w, m.what+" signer", err)
		return stepUp{}, false
	}
	cred, err := s.wa.ValidateLogin(wu, c.Data, parsed)
	if err != nil || !parsed.Response.AuthenticatorData.Flags.HasUserVerified() {
		reason := "user not verified"
		if err != nil {
			reason = webauthnReason(err)
		}
		s.log.Info("web "+m.what+" refused", "user", sess.UserID, "reason", reason)
		writeJSONError(w, http.StatusUnauthorized, m.code, m.refused)
		return stepUp{}, false
	}
	rec, err := s.creds.get(r.Context(), parsed.RawID)
	if err != nil || rec.UserID != sess.UserID {
		writeJSONError(w, http.StatusUnauthorized, m.code, m.refused)
		return stepUp{}, false
	}
	return stepUp{c: c, parsed: parsed, cred: cred, rec: rec}, true
}

// beginStepUp starts a passkey re-authentication inside a session over
// challenge: the user's own passkeys, user verification required, a
// one-use ceremony bound to this session (c carries what the finish
// needs). It writes the WebAuthn options, or the refusal: noPasskey says
// what to do for an account without a passkey.
func (s *Server) beginStepUp(ctx context.Context, w http.ResponseWriter, sess session, c ceremony, challenge []byte, what, noPasskey string) {
	wu, err := s.signer(ctx, sess.UserID)
	switch {
	case errors.Is(err, errNoPasskey):
		writeJSONError(w, http.StatusConflict, "no_passkey", noPasskey)
		return
	case err != nil:
		s.internal(w, what+" signer", err)
		return
	}
	assertion, sd, err := s.wa.BeginLogin(wu, webauthn.WithChallenge(challenge), webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		s.internal(w, "begin "+what+" assertion", err)
		return
	}
	c.Data, c.UserID, c.Session = *sd, sess.UserID, hashOf(sess.CSRF)
	id, ok := s.putCeremony(ctx, w, c)
	if !ok {
		return
	}
	s.setCookie(w, CeremonyCookie, id, int(CeremonyTimeout/time.Second))
	writeJSON(w, http.StatusOK, assertion)
}

// putCeremony stores a ceremony and returns its cookie value; when it
// can't, it has written the answer (503 busy when too many are in flight).
func (s *Server) putCeremony(ctx context.Context, w http.ResponseWriter, c ceremony) (string, bool) {
	id, err := s.cers.put(ctx, c)
	switch {
	case errors.Is(err, errBusy):
		writeJSONError(w, http.StatusServiceUnavailable, "busy", "The vault is busy. Try again in a minute.")
		return "", false
	case err != nil:
		s.internal(w, "store ceremony", err)
		return "", false
	}
	return id, true
}

// takeCeremony takes the request's ceremony of a kind and clears its
// cookie; when there is none it has written the answer (stale says why).
func (s *Server) takeCeremony(w http.ResponseWriter, r *http.Request, kind, stale string) (ceremony, bool) {
	c, err := s.cers.take(r.Context(), cookieValue(r, CeremonyCookie), kind)
	s.clearCookie(w, CeremonyCookie)
	switch {
	case errors.Is(err, errNoCeremony):
		writeJSONError(w, http.StatusBadRequest, "no_ceremony", stale)
		return c, false
	case err != nil:
		s.internal(w, "take ceremony", err)
		return c, false
	}
	return c, true
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
