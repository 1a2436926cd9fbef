//go:build !linux

package admin

import (
	"context"
	"errors"
	"net"
)

// ListenUnix is Linux's: peer credentials are how callers are known.
func ListenUnix(path, group string) (net.Listener, error) {
	return nil, errors.New("the admin socket needs Linux")
}

// ConnContext adds nothing here.
func ConnContext(ctx context.Context, c net.Conn) context.Context { return ctx }
