// Package recorder writes what happened in intercepted sessions.
//
// Two outputs. The audit log (JSONLog) is one JSON object per line for log
// shippers, written whole under a lock so concurrent sessions never
// interleave. Session recordings (Recorder) are one file per session: a
// header, then every operation, decision and response summary in order,
// each line carrying the SHA-256 of the line before it, so a recording can
// be checked (Verify) and replayed (Replay) long after the agent that wrote
// it is gone.
//
// # Recording format
//
// A recording is JSON lines. Every line is a Record whose last member is
// "hash": the hex SHA-256 of the line as it would read without that member,
// that is, with the trailing `,"hash":"<64 hex>"}` replaced by `}`. Every
// record but the first (the header, seq 0) carries in "prev" the hash of
// the record before it. The rule is on bytes, not on a re-encoding, so a
// reader written in any language can check it, and records written by a
// newer agent with fields this one does not know still verify.
//
// A recording that ends with an "end" record is complete. One without it
// was cut short (the agent was killed, the node lost power): what was
// written up to the last sync is intact and verifies, and the recording is
// reported as truncated, not corrupt. An incomplete last line (a write the
// crash interrupted) is ignored as never written.
//
// Terminal recordings (asciicast v2, one per shell or command) lie beside
// the recording, named as CastName says, numbered without gaps. Each is
// sealed, by SHA-256 and size, in a record the chain protects: the result
// of its command, or the end record when it was still open then.
//
// The header's "format" is FormatVersion. A reader refuses a newer one:
// its records may say things (seals of files it does not know to look
// for) that an older reader would pass over as verified.
package recorder
