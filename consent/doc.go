// Package consent is the vault's consent ledger: an append-only,
// tamper-evident log of grants, revocations, key registrations, passkey
// registrations, accesses and admin actions.
//
// Entries ([Entry]) carry ids only, and a random salt. Each has exactly one
// canonical encoding ([Entry.Marshal], [Parse]); its Merkle leaf is the
// RFC 6962 hash of those bytes, so a leaf hash reveals nothing about the
// entry. Entries are stored sealed under the vault's master keyset, bound
// to their index, beside the tree's stored hashes (golang.org/x/mod's tlog
// layout) and the sealed grant index, each append in one transaction.
//
// The ledger keeps them in a [Store] (package ledgerstore states the
// contract): a transaction interface that reads and writes sealed bytes,
// ids, indexes and hashes, and knows no rule. Every rule (validation,
// sealing, the index digest, hashing, verification, rebuilding, group
// commit) is here, so each backend runs the same ledger. The bbolt backend's
// is (*boltstore.Store).Ledger; storetest.RunLedger is the conformance
// suite every backend passes.
//
// [Ledger.Sign] signs and stores a [Checkpoint] (C2SP tlog-checkpoint, as
// a C2SP signed note with the log's Ed25519 key, whose private half is
// sealed under the master). [Ledger.Run] signs and stores one about once a
// second while entries arrive. [Ledger.CheckpointCovering] is for a read
// that needs a checkpoint covering its own access-start (an export's
// manifest): it writes nothing, and one signing serves everyone waiting. [Ledger.ProveInclusion] and [Ledger.ProveConsistency] give RFC
// 6962 proofs; [Ledger.Verify] replays the whole log.
//
// Clients pin the log's verifier key ([Ledger.VerifierKey]) out of band: a
// key fetched from the server proves nothing.
package consent
