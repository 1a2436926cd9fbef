// Package nbio gives a TCP connection reads and writes that stay off the Go
// scheduler's syscall path.
//
// A proxy moves small messages both ways and waits for each reply, so its
// latency is made of wake-ups, not bytes. Go's net package enters every
// read and write as a possibly blocking system call: the processor is
// marked as in a syscall, and when the call lasts longer than the
// scheduler's 20 µs tick (a write that wakes the peer easily does on a
// small virtual machine) the monitor thread takes the processor away and
// starts another thread to run it. On a 2-core node that is several extra
// context switches for every statement a workload sends. A socket in
// non-blocking mode never blocks in read or write, so these calls are made
// raw, and the wait for readiness stays the runtime's poller's, deadlines
// and Close included.
package nbio
