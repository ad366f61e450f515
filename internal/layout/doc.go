// Package layout holds no code: its tests enforce the project's layering.
//
// Only the bbolt backend (store/boltstore and below) imports
// go.etcd.io/bbolt; every other package reaches storage through the three
// store interfaces (vault.Backend, consent.Store, web.Store), so a second
// backend is a new package under store/, not a rewrite. And the package table
// in docs/architecture.md lists every package with exactly the project
// packages it imports, so the picture of the layers stays true.
package layout
