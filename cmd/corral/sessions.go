package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/agent"
	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/internal/termsafe"
	"github.com/corral-dev/corral/recorder"
	"github.com/corral-dev/corral/recorder/store"
)

// recordings opens the recordings of the configuration at file.
func recordings(file string) (store.Backend, *store.Index, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	return agent.OpenRecordings(cfg)
}

func newSessions() *cobra.Command {
	var (
		file, since, until string
		f                  store.Filter
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List recorded sessions, newest first",
		Long: `List recorded sessions, newest first. Filters combine; text filters match
exactly, or as a glob with * and ?. --since and --until take a duration back
from now (24h) or a time (2026-11-26T09:00:00Z).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.Since, err = parseWhen(since); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if f.Until, err = parseWhen(until); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			_, index, err := recordings(file)
			if err != nil {
				return err
			}
			defer index.Close()
			list, err := index.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return writeSessionsJSON(cmd.OutOrStdout(), list)
			}
			writeSessionsTable(termsafe.NewWriter(cmd.OutOrStdout()), list)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
	fl.StringVar(&f.Target, "target", "", "target name")
	fl.StringVar(&f.Protocol, "protocol", "", "protocol")
	fl.StringVar(&f.Decision, "decision", "", "admission decision (allow)")
	fl.StringVar(&f.State, "state", "", "open, complete or truncated")
	fl.StringVar(&f.Exe, "exe", "", "workload executable")
	fl.StringVar(&f.Unit, "unit", "", "workload systemd unit")
	fl.StringVar(&f.User, "user", "", "workload user")
	fl.StringVar(&f.PodNamespace, "namespace", "", "workload pod namespace")
	fl.StringVar(&f.PodName, "pod", "", "workload pod name")
	fl.StringVar(&f.ServiceAccount, "service-account", "", "workload service account")
	fl.StringVar(&f.OIDCSubject, "subject", "", "OIDC subject of the workload's token")
	fl.BoolVar(&f.HasDenied, "denied", false, "only sessions with a denied operation")
	fl.StringVar(&since, "since", "", "started at or after (duration back from now, or RFC 3339 time)")
	fl.StringVar(&until, "until", "", "started before")
	fl.IntVar(&f.Limit, "limit", 100, "at most this many (0: all)")
	fl.BoolVar(&asJSON, "json", false, "JSON lines instead of a table")
	return cmd
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor an RFC 3339 time", s)
	}
	return t, nil
}

func who(e *store.Entry) string {
	switch {
	case e.PodName != "":
		return e.PodNamespace + "/" + e.PodName
	case e.Unit != "":
		return e.Unit
	case e.Exe != "":
		return e.Exe
	}
	return e.CgroupPath
}

func writeSessionsTable(w io.Writer, list []*store.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTARTED\tDURATION\tTARGET\tWORKLOAD\tUSER\tSTATE\tSTATEMENTS\tDENIED")
	for _, e := range list {
		dur := "-"
		if !e.Ended.IsZero() {
			dur = e.Ended.Sub(e.Started).Round(time.Millisecond).String()
		}
		user := e.User
		if e.OIDCSubject != "" {
			user += " (" + e.OIDCSubject + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", e.ID, e.Started.Local().Format("2006-01-02 15:04:05"), dur,
			e.Target, termsafe.Line(who(e)), termsafe.Line(user), e.State, e.Statements, e.Denied)
	}
	tw.Flush()
}

func writeSessionsJSON(w io.Writer, list []*store.Entry) error {
	enc := json.NewEncoder(w)
	for _, e := range list {
		var ended *time.Time
		if !e.Ended.IsZero() {
			ended = &e.Ended
		}
		if err := enc.Encode(map[string]any{
			"session_id": e.ID, "started": e.Started, "ended": ended, "state": e.State,
			"target": e.Target, "protocol": e.Protocol, "client": e.Client, "orig_dst": e.OrigDst, "decision": e.Decision,
			"workload": map[string]any{
				"exe": e.Exe, "unit": e.Unit, "user": e.User, "uid": e.UID, "cgroup_path": e.CgroupPath,
				"pod":          map[string]string{"namespace": e.PodNamespace, "name": e.PodName, "service_account": e.ServiceAccount},
				"oidc_subject": e.OIDCSubject,
			},
			"statements": e.Statements, "denied": e.Denied, "records": e.Records, "bytes": e.Bytes, "file": e.Name,
		}); err != nil {
			return err
		}
	}
	return nil
}

func newReplay() *cobra.Command {
	var (
		file     string
		play     recorder.PlayOptions
		noTiming bool
		termOnly bool
		textOnly bool
	)
	cmd := &cobra.Command{
		Use:   "replay ID",
		Short: "Show a recorded session: its statements, decisions and results, in order",
		Long: `Show a recorded session as a transcript: the workload and the target, then
every operation with its decision (and the reason of a denial) and the summary
of its response (rows, bytes, masked columns, time). The hash chain is checked
as the recording is read; replay stops at the first record that does not
verify, and exits non-zero. ID may be a unique prefix of the session id.

A session's terminals (each SSH shell or command has its own) are then
checked against the seals the recording holds and played back in turn, as
they were seen, with their timing (--speed, --no-wait); --terminal plays the
terminals alone, --transcript shows the transcript alone. Their asciicast v2
files beside the recording also play in any asciinema player.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, index, err := recordings(file)
			if err != nil {
				return err
			}
			defer index.Close()
			e, err := index.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			f, err := backend.Open(e.Name)
			if err != nil {
				return err
			}
			defer f.Close()
			// Held to the index first, as verify does, and shown from
			// the descriptor it was checked through.
			rs, ok := f.(io.ReadSeeker)
			if !ok {
				return fmt.Errorf("session %s: the recording cannot be read twice", e.ID)
			}
			// A chain that breaks after what the index anchors is shown
			// up to the break, as the README says; a file that is not
			// what the index saw, not at all.
			if rep, problem, anchored := checkFile(rs, e); problem != "" && (rep == nil || rep.Broken == nil || !anchored) {
				return fmt.Errorf("session %s: the recording does not verify: %s (corral verify reports it corrupt)", e.ID, problem)
			}
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return err
			}
			// The transcript is made of what workloads sent: kept from
			// acting on the terminal. A terminal's replay is its output
			// as the workload saw it, escapes included (as asciinema
			// plays one).
			transcript := termsafe.NewWriter(cmd.OutOrStdout())
			if termOnly {
				transcript = io.Discard
			}
			rep, err := recorder.Replay(transcript, f)
			if err != nil {
				return err
			}
			if rep.Broken != nil {
				return fmt.Errorf("session %s: %v", e.ID, rep.Broken)
			}
			if textOnly {
				return nil
			}
			casts, err := terminals(backend, e.Name, rep)
			if err != nil {
				return fmt.Errorf("session %s: %v", e.ID, err)
			}
			play.NoWait = noTiming
			// All are checked before any plays: a replay shows nothing
			// that does not verify. Each plays from the descriptor it
			// was checked through: a file swapped in between is not the
			// one played.
			opened := make([]io.ReadSeekCloser, 0, len(casts))
			defer func() {
				for _, c := range opened {
					c.Close()
				}
			}()
			for _, name := range casts {
				cast, err := openCast(backend, name)
				if err != nil {
					return fmt.Errorf("session %s: %v", e.ID, err)
				}
				opened = append(opened, cast)
				if err := checkCast(cast, name, rep, e); err != nil {
					return fmt.Errorf("session %s: %v", e.ID, err)
				}
			}
			for i, name := range casts {
				switch {
				case len(casts) > 1:
					fmt.Fprintf(cmd.OutOrStdout(), "\n-- terminal %d --\n", recorder.CastNumber(name))
				case !termOnly:
					fmt.Fprintln(cmd.OutOrStdout(), "\n-- terminal --")
				}
				if _, err := opened[i].Seek(0, io.SeekStart); err != nil {
					return err
				}
				var cast io.Reader = opened[i]
				if j := slices.IndexFunc(rep.Seals, func(s recorder.CastSeal) bool { return s.Name == name }); j >= 0 {
					cast = io.LimitReader(cast, rep.Seals[j].Bytes) // what the seal vouches for
				}
				if err := recorder.Play(cmd.Context(), cmd.OutOrStdout(), cast, play); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
	cmd.Flags().Float64Var(&play.Speed, "speed", 1, "terminal playback speed (2: twice as fast)")
	cmd.Flags().BoolVar(&noTiming, "no-wait", false, "print the terminal output at once, without its timing")
	cmd.Flags().DurationVar(&play.MaxIdle, "max-idle", 2*time.Second, "cap pauses in terminal playback at this")
	cmd.Flags().BoolVar(&termOnly, "terminal", false, "play the terminal only, without the transcript")
	cmd.Flags().BoolVar(&textOnly, "transcript", false, "show the transcript only, without playing the terminal")
	return cmd
}

func newVerify() *cobra.Command {
	var (
		file string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "verify [ID | --all]",
		Short: "Check the hash chain of recordings",
		Long: `Check recordings record by record: every line against its own hash, every
record against the one before it, and the recording against what the index
saw synced (records removed from the end are found too), and every terminal
recording beside it against its seal. A recording cut short by a crash is
reported truncated, not corrupt. Exits non-zero when any
recording is corrupt.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) {
				return errors.New("give a session id or --all")
			}
			backend, index, err := recordings(file)
			if err != nil {
				return err
			}
			defer index.Close()
			var list []*store.Entry
			if all {
				if list, err = index.List(cmd.Context(), store.Filter{}); err != nil {
					return err
				}
			} else {
				e, err := index.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				list = []*store.Entry{e}
			}
			bad := 0
			for _, e := range list {
				status, detail := verifyOne(cmd.Context(), backend, e)
				if status == "corrupt" {
					bad++
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %-9s  %s\n", e.ID, status, termsafe.String(detail))
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d recordings are corrupt", bad, len(list))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "/etc/corral/corral.yaml", "configuration file")
	cmd.Flags().BoolVar(&all, "all", false, "verify every recording")
	return cmd
}

// verifyOne checks one recording, and that it still holds every record the
// index saw made durable: a chain cut after its last good record would
// otherwise pass for a crash.
func verifyOne(_ context.Context, backend store.Backend, e *store.Entry) (status, detail string) {
	f, err := backend.Open(e.Name)
	if err != nil {
		return "corrupt", err.Error()
	}
	defer f.Close()
	rep, problem, _ := checkFile(f, e)
	if problem != "" {
		return "corrupt", problem
	}
	casts, err := terminals(backend, e.Name, rep)
	if err != nil {
		return "corrupt", err.Error()
	}
	for _, name := range casts {
		cast, err := openCast(backend, name)
		if err == nil {
			err = checkCast(cast, name, rep, e)
			cast.Close()
		}
		if err != nil {
			return "corrupt", err.Error()
		}
	}
	detail = fmt.Sprintf("%d records", rep.Records)
	if rep.Truncated {
		return "truncated", detail + ": cut short (no end record); every record verified"
	}
	return "ok", detail + ", hash chain verified"
}

// checkFile reads a recording and holds it to its index entry: its own
// session's file, with every record the index saw made durable, and
// nothing after an end the index saw. problem says what is wrong;
// anchored, that the file holds this session's records up to the index's
// anchor, however it goes on.
func checkFile(f io.Reader, e *store.Entry) (rep *recorder.Report, problem string, anchored bool) {
	var hashes []string
	var started time.Time
	rep, err := recorder.Read(f, func(r *recorder.Record) error {
		if r.Header != nil {
			started = r.Time
		}
		if uint64(len(hashes)) < e.Records {
			hashes = append(hashes, r.Hash)
		}
		return nil
	})
	if err != nil {
		return rep, err.Error(), false
	}
	// Whose file, and the anchor, first: a broken chain further on does
	// not make the part before it this session's.
	switch {
	case rep.Header == nil:
		return rep, rep.Broken.Error(), false
	case rep.Header.SessionID != e.ID || recorder.Name(started, e.ID) != e.Name:
		// Another session's recording (or a copy) in this one's place.
		return rep, fmt.Sprintf("the file holds session %s, started %s: not this session's recording", rep.Header.SessionID, started.UTC().Format(time.RFC3339)), false
	case rep.Records < e.Records && rep.Broken != nil:
		return rep, rep.Broken.Error(), false
	case rep.Records < e.Records:
		return rep, fmt.Sprintf("%d records, but %d were written and synced: records were removed from the end", rep.Records, e.Records), false
	case e.Records > 0 && hashes[e.Records-1] != e.LastHash:
		return rep, fmt.Sprintf("record %d is not the one the index saw synced: the recording was rewritten", e.Records-1), false
	case e.State != store.StateOpen && rep.Records > e.Records:
		// A closed recording holds what the index saw when it closed;
		// what follows was added after, by whoever could write the file
		// (a broken line after them included): not shown as its.
		return rep, fmt.Sprintf("%d records, but the recording was closed with %d: records were added after it ended", rep.Records, e.Records), false
	case rep.Broken != nil:
		return rep, rep.Broken.Error(), true
	case e.State == store.StateComplete && !rep.Complete:
		return rep, "the index saw this recording end, and its end record is gone", true
	}
	return rep, "", true
}

// terminals lists the terminal recordings beside a recording, and fails
// when one it seals is missing.
func terminals(backend store.Backend, name string, rep *recorder.Report) ([]string, error) {
	casts, err := recorder.Casts(backend, name)
	if err != nil {
		return nil, err
	}
	for _, seal := range rep.Seals {
		if !slices.Contains(casts, seal.Name) {
			return nil, fmt.Errorf("the terminal recording %s is missing", seal.Name)
		}
	}
	return casts, nil
}

// checkCast holds a terminal recording to the seal its recording gives
// it. One without a seal is expected only where the recording was cut
// short before sealing it, as the file and the index both say.
func checkCast(cast io.Reader, name string, rep *recorder.Report, e *store.Entry) error {
	i := slices.IndexFunc(rep.Seals, func(s recorder.CastSeal) bool { return s.Name == name })
	if i < 0 {
		if rep.Complete || e.State == store.StateComplete {
			return fmt.Errorf("the terminal recording %s is not sealed by its recording", name)
		}
		return nil
	}
	return recorder.CheckCast(cast, rep.Seals[i])
}

// openCast opens a terminal recording to check and then play.
func openCast(backend store.Backend, name string) (io.ReadSeekCloser, error) {
	f, err := backend.Open(name)
	if err != nil {
		return nil, err
	}
	rs, ok := f.(io.ReadSeekCloser)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("the terminal recording %s cannot be read twice", name)
	}
	return rs, nil
}
