//go:build !linux

package intercept

import "net"

// watchHangup does nothing here: a request whose client went away expires
// instead of being cancelled.
func watchHangup(c net.Conn, gone func()) (stop func()) { return func() {} }
