// Package netns finds the network namespaces that hold processes and opens
// corral's listeners inside them.
//
// A pod's 127.0.0.1 is its own loopback, so a redirected connect from a pod
// can only reach a listener that lives in the pod's network namespace. The
// agent enters each namespace on a locked OS thread, listens on loopback,
// leaves, and serves the socket from the host process: sockets keep the
// namespace they were created in.
package netns
