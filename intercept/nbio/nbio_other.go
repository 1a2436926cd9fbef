//go:build !linux

package nbio

import (
	"io"
	"net"
)

// Wrap returns c: the raw path is Linux's.
func Wrap(c net.Conn) net.Conn { return c }

// Copy is io.Copy.
func Copy(dst, src net.Conn) (int64, error) { return io.Copy(dst, src) }
