// Package consent is the vault's consent ledger: an append-only,
// tamper-evident log of grants, revocations, key registrations, passkey
// registrations, accesses and admin actions.
//
// Entries ([Entry]) carry ids only, and a random salt. Each has exactly one
// canonical encoding ([Entry.Marshal], [Parse]); its Merkle leaf is the
// RFC 6962 hash of those bytes, so a leaf hash reveals nothing about the
// entry. Entries are stored sealed under the vault's master keyset, bound
// to their index, beside the tree's stored hashes (golang.org/x/mod's tlog
// layout), all in the vault's bbolt file and written in one transaction.
//
// [Ledger.Sign] signs a [Checkpoint] (C2SP tlog-checkpoint, as a C2SP
// signed note with the log's Ed25519 key, whose private half is sealed
// under the master). [Ledger.Run] signs about once a second while entries
// arrive. [Ledger.ProveInclusion] and [Ledger.ProveConsistency] give RFC
// 6962 proofs; [Ledger.Verify] replays the whole log.
//
// Clients pin the log's verifier key ([Ledger.VerifierKey]) out of band: a
// key fetched from the server proves nothing.
package consent
