//go:build !linux

package agent

import (
	"context"
	"errors"
	"io"

	"github.com/corral-dev/corral/bpf"
)

var errLinuxOnly = errors.New("corral's agent runs on Linux only")

// Run fails: interception needs Linux's eBPF.
func Run(context.Context, Options) error { return errLinuxOnly }

// Doctor fails: interception needs Linux's eBPF.
func Doctor(io.Writer, string, string, func() []bpf.Feature) error { return errLinuxOnly }
