package vault

// WriteFormat makes v seal new readings in format f (FormatWrapped,
// FormatCompact or FormatIdentity), so tests can make old-format records and mixed vaults.
func WriteFormat(v *Vault, f int) { v.writeFormat = f }

// RecordAD is the associated data (and, for FormatCompact, the key
// derivation input) of a record.
func RecordAD(format int, patient, schema string, t int64, tag [16]byte) []byte {
	return recordAD(nil, format, patient, schema, t, tag)
}

// RecordID is a FormatIdentity record's identity (its subkey's input).
func RecordID(schema string, t int64, tag [16]byte) [16]byte {
	var c schemaCodes
	return recordID(c.of(schema), t, tag)
}
