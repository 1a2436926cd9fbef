//go:build !linux

package nbio

import "net"

// Wrap returns c: the raw path is Linux's.
func Wrap(c net.Conn) net.Conn { return c }
