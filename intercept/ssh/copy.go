package ssh

import (
	"io"
	"sync"
)

// Copy buffers: a channel is read with a small buffer while it trickles
// (a shell) and a large one while it streams (a transfer). x/crypto/ssh
// sends the peer a window adjustment after every read once the peer keeps
// the window full, as OpenSSH does when it streams: reading one 32 KiB
// packet at a time would answer every packet with one.
const (
	smallCopy = 32 << 10
	largeCopy = 512 << 10
)

var largeBuffers = sync.Pool{New: func() any { b := make([]byte, largeCopy); return &b }}

// copyChannel copies src to dst until src ends or a write fails, like
// io.Copy, with a buffer sized to the flow.
func copyChannel(dst io.Writer, src io.Reader) (written int64, err error) {
	small := make([]byte, smallCopy)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			largeBuffers.Put(large)
		}
	}()
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return written, nil
			}
			return written, rerr
		}
		switch {
		case large == nil && n == len(small):
			large = largeBuffers.Get().(*[]byte)
			buf = *large
		case large != nil && n < smallCopy:
			largeBuffers.Put(large)
			large, buf = nil, small
		}
	}
}
