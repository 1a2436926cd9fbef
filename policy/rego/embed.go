// Package rego holds corral's built-in Rego policy and its tests, embedded
// into the binary.
package rego

import "embed"

// Files are the built-in modules (*.rego, tests included).
//
//go:embed *.rego
var Files embed.FS
