package keys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

// prefixID reads the key id from a Tink ciphertext's output prefix.
func prefixID(t *testing.T, ct []byte) uint32 {
	t.Helper()
	if len(ct) < 5 || ct[0] != 0x01 {
		t.Fatalf("ciphertext has no Tink prefix")
	}
	return binary.BigEndian.Uint32(ct[1:5])
}

func TestMasterRotate(t *testing.T) {
	m := testMaster(t)
	old := m.PrimaryID()
	sealed, err := m.Encrypt([]byte("account CANARY"), []byte("user|pt_x"))
	if err != nil {
		t.Fatal(err)
	}
	if prefixID(t, sealed) != old {
		t.Fatal("a ciphertext does not name its master key")
	}

	next, err := m.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Keys()) != 1 || m.PrimaryID() != old {
		t.Fatal("Rotate changed the master it was called on")
	}
	ks := next.Keys()
	if len(ks) != 2 || ks[0].ID != old || ks[0].Primary || !ks[1].Primary || ks[1].ID == old {
		t.Fatalf("rotated keys = %+v; want the old key then a new primary", ks)
	}
	for _, k := range ks {
		if k.Status != "enabled" {
			t.Fatalf("key %d status %q", k.ID, k.Status)
		}
	}
	if next.PrimaryID() != ks[1].ID || !next.HasKey(old) || next.SameKeys(m) {
		t.Fatal("primary, HasKey or SameKeys disagree with Keys")
	}
	// What the old key sealed still opens; new seals use the new primary.
	if pt, err := next.Decrypt(sealed, []byte("user|pt_x")); err != nil || string(pt) != "account CANARY" {
		t.Fatalf("rotated master does not open an old secret: %v", err)
	}
	fresh, err := next.Encrypt([]byte("new"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if prefixID(t, fresh) != next.PrimaryID() {
		t.Fatal("rotated master does not seal under its new primary")
	}
	if _, err := m.Decrypt(fresh, []byte("ad")); err == nil {
		t.Fatal("the old keyset opened a secret sealed under a key it lacks")
	}

	// Adopt switches every holder of m at once.
	holder := m
	if err := m.Adopt(next); err != nil {
		t.Fatal(err)
	}
	if holder.PrimaryID() != next.PrimaryID() {
		t.Fatal("a holder of the master did not see the new primary")
	}
	if ct, _ := holder.Encrypt([]byte("x"), nil); prefixID(t, ct) != next.PrimaryID() {
		t.Fatal("after Adopt the master still seals under the old primary")
	}
	if _, err := holder.Decrypt(sealed, []byte("user|pt_x")); err != nil {
		t.Fatal("after Adopt an old secret does not open")
	}
	// A keyset missing a key in use is refused.
	if err := m.Adopt(testMaster(t)); err == nil {
		t.Fatal("adopted a keyset that lacks the current keys")
	}
	if m.PrimaryID() != next.PrimaryID() {
		t.Fatal("a refused Adopt changed the master")
	}

	// The rotated keyset survives wrapping under the root.
	root, err := CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := next.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	back, err := OpenMaster(w, root)
	if err != nil || !back.SameKeys(next) {
		t.Fatalf("wrapped rotated master: %v", err)
	}
	// The root is Tink subtle: no key-id prefix. A wrapping starts with a
	// random nonce, whose first byte is the prefix's start byte once in 256,
	// so one wrapping proves nothing; a prefix would make every wrapping
	// name the same key.
	ids := map[uint32]int{}
	for range 8 {
		w, err := next.Wrap(root)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := wrappedKeyID(w); err == nil {
			ids[id]++
		}
	}
	for id, n := range ids {
		if n == 8 {
			t.Fatalf("every wrapped master named key %d: the root adds a key-id prefix", id)
		}
	}
}

func TestRewrapPatientKeys(t *testing.T) {
	m := testMaster(t)
	old := m.PrimaryID()
	const id = "pt_rewrap"
	pk, blob, err := NewPatientKeys(m, id)
	if err != nil {
		t.Fatal(err)
	}
	if kek, prf, err := PatientBlobKeyIDs(blob); err != nil || kek != old || prf != old {
		t.Fatalf("blob key ids = %d %d, %v; want %d", kek, prf, err, old)
	}
	ad := []byte("jhvault/record/v1|" + id + "|s|1|00")
	env, err := pk.Seal([]byte("reading CANARY"), ad)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := pk.Tag("uuid-1")
	if err != nil {
		t.Fatal(err)
	}

	next, err := m.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	nb, wrappedBy, err := RewrapPatientKeys(next, id, blob)
	if err != nil {
		t.Fatal(err)
	}
	if wrappedBy != next.PrimaryID() {
		t.Fatalf("rewrapped under %d, want the new primary %d", wrappedBy, next.PrimaryID())
	}
	if kek, prf, err := PatientBlobKeyIDs(nb); err != nil || kek != wrappedBy || prf != wrappedBy {
		t.Fatalf("rewrapped blob key ids = %d %d, %v", kek, prf, err)
	}
	if bytes.Equal(nb, blob) {
		t.Fatal("rewrapped blob equals the old one")
	}
	// The old keyset cannot open it: it really is under the new key.
	if _, err := OpenPatientKeys(m, id, nb); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("old master opened the rewrapped blob: %v", err)
	}
	// The KEK and PRF are the same keys: an old record opens, tags agree.
	pk2, err := OpenPatientKeys(next, id, nb)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := pk2.Open(env, ad); err != nil || string(pt) != "reading CANARY" {
		t.Fatalf("old record after rewrap: %v", err)
	}
	if tag2, _ := pk2.Tag("uuid-1"); tag2 != tag || pk2.KEKID() != pk.KEKID() {
		t.Fatal("rewrap changed the patient's keys")
	}
	// The patient id is still bound.
	if _, err := OpenPatientKeys(next, "pt_other", nb); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("rewrapped blob opened under another patient id: %v", err)
	}
	if _, _, err := RewrapPatientKeys(next, "pt_other", blob); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("rewrap under another patient id: %v", err)
	}
	// A master without the wrapping key cannot rewrap.
	if _, _, err := RewrapPatientKeys(testMaster(t), id, blob); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("rewrap with a foreign master: %v", err)
	}
	// Corrupt blobs are refused without a panic.
	for _, bad := range [][]byte{nil, []byte("{}"), []byte(`{"v":1,"kek":"AAAA","prf":"AAAA"}`), blob[:len(blob)/2]} {
		if _, _, err := PatientBlobKeyIDs(bad); err == nil {
			t.Errorf("PatientBlobKeyIDs(%q) gave no error", bad)
		}
		if _, _, err := RewrapPatientKeys(next, id, bad); err == nil {
			t.Errorf("RewrapPatientKeys(%q) gave no error", bad)
		}
	}
}

func TestRewrapMaster(t *testing.T) {
	dir := t.TempDir()
	r1, err := CreateKeyFile(filepath.Join(dir, "a.key"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := CreateKeyFile(filepath.Join(dir, "b.key"))
	if err != nil {
		t.Fatal(err)
	}
	pass, err := RootFromPassphrase([]byte("new passphrase"), InsecureTestArgon2Params())
	if err != nil {
		t.Fatal(err)
	}
	m := testMaster(t)
	m2, err := m.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	w1, err := m2.Wrap(r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := RewrapMaster(w1, r2, pass); !errors.Is(err, ErrWrongRoot) {
		t.Fatalf("rewrap with the wrong old root: %v", err)
	}
	for _, nr := range []*Root{r2, pass} {
		w2, got, err := RewrapMaster(w1, r1, nr)
		if err != nil {
			t.Fatal(err)
		}
		if !got.SameKeys(m2) {
			t.Fatal("RewrapMaster changed the keyset")
		}
		if _, err := OpenMaster(w2, r1); !errors.Is(err, ErrWrongRoot) {
			t.Fatalf("old root opens the rewrapped master: %v", err)
		}
		back, err := OpenMaster(w2, nr)
		if err != nil || !back.SameKeys(m2) {
			t.Fatalf("new root: %v", err)
		}
	}
}

// TestAdoptWhileInUse switches the keyset while other goroutines seal and
// open; run with -race.
func TestAdoptWhileInUse(t *testing.T) {
	m := testMaster(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ad := []byte{byte(w), byte(i)}
				ct, err := m.Encrypt([]byte("x"), ad)
				if err == nil {
					_, err = m.Decrypt(ct, ad)
				}
				if err == nil && i%10 == 0 {
					_, blob, err2 := NewPatientKeys(m, "pt_w")
					if err = err2; err == nil {
						_, err = OpenPatientKeys(m, "pt_w", blob)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 20 {
		next, err := m.Rotate()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Adopt(next); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(m.Keys()) != 21 {
		t.Fatalf("%d keys after 20 rotations", len(m.Keys()))
	}
}

// TestMasterReloadsUnknownKey: a master that meets a ciphertext or a
// patient key blob under a key it lacks (another process rotated) reloads
// the keyset once and opens it; a key the reloaded keyset lacks too still
// fails, and then no reload is tried again for reloadPause.
func TestMasterReloadsUnknownKey(t *testing.T) {
	root, err := CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := first.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	// b is another process's copy of the same keyset.
	b, err := OpenMaster(wrapped, root)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := first.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	ad := []byte("ad")
	ct, err := rotated.Encrypt([]byte("secret"), ad)
	if err != nil {
		t.Fatal(err)
	}
	_, blob, err := NewPatientKeys(rotated, "pt_x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Decrypt(ct, ad); err == nil {
		t.Fatal("a master without the new key and no reload opened its ciphertext")
	}
	stored := rotated
	calls := 0
	b.SetReload(func() (*Master, error) { calls++; return stored, nil })
	if pt, err := b.Decrypt(ct, ad); err != nil || string(pt) != "secret" {
		t.Fatalf("after a reload: %q, %v", pt, err)
	}
	if _, err := OpenPatientKeys(b, "pt_x", blob); err != nil {
		t.Fatalf("a patient blob under the new key: %v", err)
	}
	if calls != 1 || b.PrimaryID() != rotated.PrimaryID() || b.UnknownKeyReloads() != 1 {
		t.Fatalf("%d reloads (%d counted), primary %d; want 1 and %d", calls, b.UnknownKeyReloads(), b.PrimaryID(), rotated.PrimaryID())
	}
	// A key that exists nowhere: one reload, then none for a while.
	other, err := NewMaster()
	if err != nil {
		t.Fatal(err)
	}
	stray, err := other.Encrypt([]byte("x"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := b.Decrypt(stray, ad); err == nil {
			t.Fatal("a ciphertext under an unknown key opened")
		}
	}
	if calls != 2 || b.UnknownKeyReloads() != 2 {
		t.Fatalf("%d reloads (%d counted) for a key that exists nowhere; want one more", calls, b.UnknownKeyReloads())
	}
	// A wrong associated data under a key b holds is no reason to reload.
	if _, err := b.Decrypt(ct, []byte("other")); err == nil || calls != 2 {
		t.Fatalf("wrong ad: %v, %d reloads", err, calls)
	}
}

// TestTwoPhaseKeyset: AddKey adds a key that is not primary, Promote makes
// it primary; a holder that adopted the promoted keyset ignores the
// earlier one (a reload that read the store before the promotion), a
// keyset lacking a key is refused, and Reload adopts what is stored
// without counting as a safety-net reload.
func TestTwoPhaseKeyset(t *testing.T) {
	m := testMaster(t)
	first := m.PrimaryID()
	added, err := m.AddKey()
	if err != nil {
		t.Fatal(err)
	}
	newID := added.KeyIDs()[1]
	if added.PrimaryID() != first || len(added.KeyIDs()) != 2 {
		t.Fatalf("AddKey: primary %d, keys %v; want primary %d and two keys", added.PrimaryID(), added.KeyIDs(), first)
	}
	if _, err := added.Promote(first); err == nil {
		t.Fatal("Promote of a key that is not the newest was allowed")
	}
	promoted, err := added.Promote(newID)
	if err != nil {
		t.Fatal(err)
	}
	if promoted.PrimaryID() != newID {
		t.Fatalf("promoted primary %d, want %d", promoted.PrimaryID(), newID)
	}
	root, err := CreateKeyFile(filepath.Join(t.TempDir(), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := m.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	// h is another process's copy of m.
	h, err := OpenMaster(wrapped, root)
	if err != nil {
		t.Fatal(err)
	}
	stored := added
	h.SetReload(func() (*Master, error) { return stored, nil })
	for _, step := range []struct {
		name    string
		stored  *Master
		changed bool
		primary uint32
	}{
		{"the added key", added, true, first},
		{"the same again", added, false, first},
		{"the promotion", promoted, true, newID},
		{"the earlier keyset, read before the promotion", added, false, newID},
		{"the keyset before the rotation", m, false, newID},
	} {
		stored = step.stored
		changed, err := h.Reload()
		if step.stored == m {
			if err == nil {
				t.Fatalf("%s: a keyset lacking a key was adopted", step.name)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if changed != step.changed || h.PrimaryID() != step.primary {
			t.Fatalf("%s: changed %v, primary %d; want %v, %d", step.name, changed, h.PrimaryID(), step.changed, step.primary)
		}
	}
	if h.UnknownKeyReloads() != 0 {
		t.Fatalf("Reload counted %d safety-net reloads", h.UnknownKeyReloads())
	}
}
