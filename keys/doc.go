// Package keys holds the vault's key hierarchy.
//
// Four layers of keys protect a reading:
//
//	root key  (key file outside DIR, or Argon2id passphrase; never stored in DIR)
//	  └─ wraps the master keyset  (Tink AEAD keyset, AES-256-GCM, stored in the DB)
//	       └─ wraps one KEK per patient  (random Tink AES-256-GCM keyset + Tink AES-CMAC PRF keyset)
//	            └─ wraps one DEK per record  (fresh random ChaCha20-Poly1305 key)
//
// A [Root] is opened from a key file ([LoadKeyFile], [CreateKeyFile]) or a
// passphrase ([RootFromPassphrase]). It unwraps the [Master] with
// [OpenMaster]; a wrong root key fails there, before anything is written.
//
// [Master] encrypts small secrets (patient key blobs, account records, the
// ledger's signing key) with associated data naming what they belong to.
//
// [PatientKeys] is the per-patient layer. [PatientKeys.Seal] draws a fresh
// DEK for every record, encrypts the record under it and wraps the DEK under
// the patient's KEK; both steps bind the caller's associated data, so a
// ciphertext moved to another record or patient fails to open.
// [PatientKeys.Tag] is the keyed dedup tag of a uuid (a PRF, AES-256-CMAC,
// under a per-patient key), so the index never holds a plain hash of health
// data.
//
// Every ciphertext records the Tink key id that made it (the 5-byte Tink
// output prefix), so rotation can re-wrap without guessing. Destroying a
// patient's wrapped key blob destroys every record of that patient.
package keys
