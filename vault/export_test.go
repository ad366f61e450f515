package vault

// WriteFormat makes v seal new readings in format f (FormatWrapped or
// FormatCompact), so tests can make old-format records and mixed vaults.
func WriteFormat(v *Vault, f int) { v.writeFormat = f }
