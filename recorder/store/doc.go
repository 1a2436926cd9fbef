// Package store keeps session recordings: a Backend holds the files (a
// local directory by default; the interface is what an object store
// implements), and an Index lists them for search without opening each.
//
// The index is SQLite (pure Go, no cgo), in WAL mode so the command line
// can read it while the agent writes. It is a cache of what the files say:
// when it and a file disagree, the file, checked by its hash chain, wins.
package store
