package shellcmd

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Command is one simple command the script would run.
type Command struct {
	// Argv holds the words after quote removal. A word that expands at run
	// time ($X, $(...), $((...))) is its source text, e.g. "$HOME"; globs
	// and ~ are kept as written.
	Argv []string
	// Text is Argv joined by single spaces; policy patterns match it.
	Text string
	// Via lists the wrappers and interpreters the command was found inside,
	// outermost first, e.g. ["bash -c", "sudo"].
	Via []string
	// Known counts the words of Argv, from the first, that are known
	// before the command runs; the rest may hold anything (a variable, a
	// command substitution, what xargs puts in). Appends is set when the
	// command also gets words appended at run time (xargs without -I).
	// Patterns that some such command could match apply to it.
	Known   int
	Appends bool
	// ReadsInput is set when the command runs commands that cannot be seen
	// here: a shell without -c (reading its input or a script file), a
	// wrapper that starts a shell when given no command (sudo -s, su,
	// chroot DIR), source and . (which read a file). The caller treats it
	// as an interactive shell.
	ReadsInput bool
}

const (
	// MaxScriptBytes bounds the work done for one request; exec commands
	// longer than this are not typed by people.
	MaxScriptBytes = 64 << 10
	// MaxCommands bounds the policy work and the size of audit records.
	MaxCommands = 1000
	// MaxDepth bounds how many scripts may be nested in one another through
	// sh -c, eval and the like; deeper nesting only serves to hide things.
	MaxDepth = 8
	// MaxVia bounds how many wrappers and scripts a command may be found
	// inside. Each level copies the words of the command it wraps, so the
	// bound also keeps the result small.
	MaxVia = 32
)

// doubleByteHazard returns the index of the first byte of s that a
// double-byte locale would take into the character before it, where that
// changes how a shell reads the line, or -1. Big5, Shift JIS and GBK take
// a byte from 0x40 to 0x7E after a lead byte (0x81 and up) as its second
// half: `严\"` is one character and a closing quote there, where UTF-8
// reads an escaped quote. A target's locale is its own (a line may even
// set LC_ALL for its next line), so the shell's own characters among
// those bytes (\ ` { } [ ] | ~ ^ @) are refused after a byte outside
// ASCII, where they mean something: anywhere but in plain single quotes,
// whose only special byte (') no such character holds; in double quotes'
// text, only \ and `.
func doubleByteHazard(s string, f *syntax.File) int {
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 }) {
		return -1
	}
	type span struct {
		from, to uint
		special  string // what still matters there
	}
	var spans []span
	syntax.Walk(f, func(n syntax.Node) bool {
		switch q := n.(type) {
		case *syntax.SglQuoted:
			if !q.Dollar {
				spans = append(spans, span{q.Left.Offset() + 1, q.Right.Offset(), ""})
			}
		case *syntax.DblQuoted:
			for _, p := range q.Parts {
				if l, ok := p.(*syntax.Lit); ok {
					spans = append(spans, span{l.Pos().Offset(), l.End().Offset(), "\\`"})
				}
			}
		}
		return true
	})
	for i := 1; i < len(s); i++ {
		if s[i-1] < 0x80 || strings.IndexByte(doubleByteSpecial, s[i]) < 0 {
			continue
		}
		special, quoted := doubleByteSpecial, false
		for _, sp := range spans {
			if uint(i) >= sp.from && uint(i) < sp.to {
				special, quoted = sp.special, sp.special != ""
				break
			}
		}
		if strings.IndexByte(special, s[i]) < 0 {
			continue
		}
		if quoted && s[i] == '\\' && (i+1 >= len(s) || strings.IndexByte("\"$`\\\n", s[i+1]) < 0) {
			continue // in double quotes, a backslash before anything else is itself
		}
		return i
	}
	return -1
}

// doubleByteSpecial are the shell's characters that a double-byte
// locale's second half of a character may be.
const doubleByteSpecial = "\\`{}[]|~^@"

// Shell is how the target's login shell reads a command line.
type Shell int

const (
	// AnyShell: bash or a POSIX sh; the line is read as both would
	// read it (see the package documentation).
	AnyShell Shell = iota
	// Bash: the line is read as bash reads it, and only so.
	Bash
	// POSIX: a POSIX sh; the line is read both ways, as with
	// AnyShell, and must read as a POSIX sh reads it to its end.
	POSIX
)

func (s Shell) String() string {
	switch s {
	case Bash:
		return "bash"
	case POSIX:
		return "sh"
	}
	return "any"
}

// Commands returns every command the script would run, in source order, or
// an error that says why the script cannot be checked (and must therefore be
// denied). The script is a command line for a login shell that may be bash
// or a POSIX sh.
func Commands(script string) ([]Command, error) {
	return CommandsAs(script, AnyShell)
}

// CommandsAs is Commands for a login shell known to be bash (Bash), a
// POSIX sh (POSIX), or either (AnyShell, as Commands). Scripts the line
// hands to other shells are read as those shells read them, whatever
// login is.
func CommandsAs(script string, login Shell) ([]Command, error) {
	if len(script) > MaxScriptBytes {
		return nil, fmt.Errorf("the command is %d bytes long; at most %d bytes can be checked", len(script), MaxScriptBytes)
	}
	if err := checkDepth(script, ""); err != nil {
		return nil, err
	}
	w := &walker{seen: make(map[syntax.Node]bool), walked: make(map[walkKey]bool), aliases: make(map[string]bool), names: make(map[string]bool),
		counted: make(map[string]string), numeric: make(map[string]bool), made: make(map[string]bool), login: login,
		numbers: make(map[string]string), read: make(map[string]bool)}
	if err := w.script(script, ctx{}, ""); err != nil {
		return nil, err
	}
	for name := range w.aliases {
		if w.names[name] {
			return nil, fmt.Errorf("cannot check `%s`: the command line makes it an alias", name)
		}
	}
	for name, where := range w.counted {
		if !(shellNumeric[name] || w.numeric[name]) || w.made[name] || setByShell[name] {
			return nil, fmt.Errorf("cannot check %s: arithmetic reads %s, which the command line does not give only numbers, and bash runs commands a value there can hold", where, name)
		}
	}
	for name, where := range w.numbers {
		if !(shellNumeric[name] || w.numeric[name]) || w.made[name] || setByShell[name] {
			return nil, fmt.Errorf("cannot check %s: a builtin that takes names reads it, the command line does not give %s only numbers, and bash runs what a name's subscript holds", where, name)
		}
	}
	// The two readings may know different amounts of a command's words
	// (a declaration is a builtin to bash, a plain command to sh): the
	// merged command knows the least either does.
	var out []Command
	at := make(map[string]int, len(w.cmds))
	for _, k := range w.cmds {
		if i, ok := at[key(k)]; ok {
			out[i].Known = min(out[i].Known, k.Known)
			out[i].Appends = out[i].Appends || k.Appends
			continue
		}
		at[key(k)] = len(out)
		out = append(out, k)
	}
	if len(out) > MaxCommands {
		return nil, fmt.Errorf("the command runs more than %d commands; too many to check", MaxCommands)
	}
	return out, nil
}

// maxDepth bounds how deep brackets may nest in a command line or a
// script in it: parentheses, braces and square brackets together.
const maxDepth = 64

// maxWork bounds the steps of checking one command line: arithmetic read
// at every level of its nesting, a wrapper's guesses at its command each
// walking what follows. Lines people write take a few thousand.
const maxWork = 500_000

// spend counts n steps of checking, and refuses the line past maxWork.
func (w *walker) spend(n int) error {
	if w.work += n; w.work > maxWork {
		return errors.New("cannot check the command: it takes too much checking (wrappers whose command could start at any word, around nested arithmetic or scripts)")
	}
	return nil
}

// maxParsed bounds the text parsed again for one command line: a wrapper
// whose command could start at any of its words reads a nested script once
// for each guess.
const maxParsed = 2 * MaxScriptBytes

// bracketDepth is the deepest nesting of brackets of any kind in s, quoted
// or not.
func bracketDepth(s string) int {
	d, most := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{', '[':
			d++
			most = max(most, d)
		case ')', '}', ']':
			d = max(d-1, 0)
		}
	}
	return most
}

// checkDepth refuses a script nested too deep to check in good time:
// the parser, and arithmetic and expansions nested in one another (a[a[
// ... ]], ${a:=${a:=...}}), take time that grows faster than the text,
// and every workload on the node shares the agent's checking.
func checkDepth(s, label string) error {
	d := bracketDepth(s)
	if d <= maxDepth {
		return nil
	}
	if label == "" {
		return fmt.Errorf("the command nests brackets %d deep; at most %d can be checked", d, maxDepth)
	}
	return fmt.Errorf("cannot check the script given to %s: it nests brackets %d deep; at most %d can be checked", label, d, maxDepth)
}

func key(k Command) string {
	return fmt.Sprintf("%q %q %t", k.Argv, k.Via, k.ReadsInput)
}

// ctx is where in the script a command sits.
type ctx struct {
	// src is the script being walked; positions in its syntax tree are
	// offsets into it.
	src string
	// via lists the wrappers and interpreters around the script.
	via []string
	// depth counts the scripts this one is nested in.
	depth int
	// open is set when the command gets more words at run time, as xargs
	// appends the words it reads to the command it runs.
	open bool
}

// inside returns the context for a command run by a wrapper.
func (c ctx) inside(label string) ctx {
	via := make([]string, len(c.via), len(c.via)+1)
	copy(via, c.via)
	c.via = append(via, label)
	return c
}

type walker struct {
	login Shell // how the line itself is read
	// last is the index in cmds of the command being dispatched, for the
	// wrapper and interpreter handlers to mark.
	last int
	cmds []Command
	// seen records the nodes that were walked, so that a node the walk
	// does not reach is found and refused rather than silently passed.
	seen map[syntax.Node]bool
	// walked records the scripts walked, where: a script found again in
	// the same place (by the other reading of the script around it) would
	// only yield the same commands again.
	walked map[walkKey]bool
	// aliases are the names the command line defines as aliases.
	aliases map[string]bool
	// wrapWords counts the words anyWrapper's guesses copied.
	wrapWords int
	// parsed counts the bytes of scripts parsed again (see maxParsed),
	// work the steps of checking (see maxWork); read holds the scripts
	// parsed.
	parsed, work int
	read         map[string]bool
	// names are the program names the commands run under, to be held
	// against aliases once the whole line is walked: a function body, an
	// eval or a trap may use an alias defined later in the line.
	names map[string]bool
	// counted are the names arithmetic reads. bash evaluates a value read
	// in arithmetic as arithmetic itself, recursively through the names
	// in it, and runs the command substitution of a subscript there
	// (x='a[$(cmd)]'; echo $((x))). So arithmetic may read only what is
	// known to hold a number: a name the line gives only integer literals
	// or arithmetic results (numeric, and never made), or one the shell
	// keeps numeric itself.
	counted map[string]string
	numeric map[string]bool
	// numbers: variables read where a name-taking builtin needs a number
	// (wait $pid, [ $n -gt 0 ]), by name, with where; like counted.
	numbers map[string]string
	made    map[string]bool
}

type walkKey struct {
	src, via string
	depth    int
}

// script parses and walks one script; label names what ran it ("" for the
// command line itself).
//
// The script is read twice (the line itself only as bash reads it when
// the login shell is known to be bash). The target's login shell, and the
// sh that runs a nested script, may be bash or a POSIX sh (dash on Debian
// and Ubuntu), and the two read some text differently: `((rm x))` is
// arithmetic to bash and two subshells running rm to dash, $'...' is a
// quote to one and not the other. Every command either reading finds is
// reported. bash's reading must succeed. sh runs each command as it reads
// it and stops at the first it cannot parse, so its reading covers what
// comes before that; a line that is bash's syntax to the end is checked as
// bash reads it.
func (w *walker) script(s string, c ctx, label string) error {
	if label != "" {
		if c.depth >= MaxDepth {
			return fmt.Errorf("cannot check the script given to %s: scripts are nested more than %d deep", label, MaxDepth)
		}
		c = c.inside(label)
		c.depth++
	}
	c.src = s
	c.open = false
	k := walkKey{src: s, via: strings.Join(c.via, "\x00"), depth: c.depth}
	if w.walked[k] {
		return nil
	}
	w.walked[k] = true
	if err := w.spend(len(s)); err != nil {
		return err
	}
	// A script read again (a wrapper's guesses at its command, each
	// with its own wrappers around it) is charged; the first reading of
	// each is bounded by the line's own size and nesting.
	if w.read[s] {
		if w.parsed += len(s); w.parsed > maxParsed {
			return fmt.Errorf("cannot check the command: its scripts, read again for each command a wrapper may run, come to more than %d bytes", maxParsed)
		}
	}
	w.read[s] = true
	if label != "" {
		if err := checkDepth(s, label); err != nil {
			return err
		}
	}
	// Every script is read as bash reads it, also for a POSIX login
	// shell: bash run as sh, busybox ash and mksh read $'...' as bash
	// does, where dash does not.
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(s), "")
	if err != nil {
		if label == "" {
			return fmt.Errorf("cannot parse the command: %v", err)
		}
		return fmt.Errorf("cannot parse the script given to %s: %v", label, err)
	}
	if i := doubleByteHazard(s, f); i >= 0 {
		return fmt.Errorf("cannot check the command: in %q a character outside ASCII comes right before %q; in a double-byte locale (Big5, Shift JIS, GBK) the shell reads the two as one character, and the rest of the line otherwise; put the text in single quotes", s[max(0, i-8):i+1], s[i])
	}
	var translated *syntax.DblQuoted
	syntax.Walk(f, func(n syntax.Node) bool {
		if q, ok := n.(*syntax.DblQuoted); ok && q.Dollar && translated == nil {
			translated = q
		}
		return translated == nil
	})
	if translated != nil {
		// bash looks the text up in a message catalog as it reads the
		// line (one an earlier line may have written, TEXTDOMAINDIR),
		// and expands the translation: $(...) there runs.
		return fmt.Errorf(`cannot check $"...": bash replaces it with a translation from a message catalog and runs what that holds`)
	}
	if err := w.stmts(f.Stmts, c); err != nil {
		return err
	}
	if err := w.checkSeen(f); err != nil {
		return err
	}
	if label == "" && w.login == Bash {
		return nil
	}
	var werr error
	var read uint // the end of what sh's reading walked
	perr := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Stmts(strings.NewReader(s), func(st *syntax.Stmt) bool {
		if werr = w.stmt(st, c); werr == nil {
			werr = w.checkSeen(st)
		}
		read = st.End().Offset()
		return werr == nil
	})
	if werr != nil {
		return werr
	}
	if perr != nil && label == "" && w.login == POSIX {
		return fmt.Errorf("cannot parse the command as the target's login shell, a POSIX sh, reads it: %v", perr)
	}
	// A parse error ends sh's reading where sh would stop running it, as
	// far as the parser and sh agree on where that is; they do not always
	// (dash reads `&>` as `&` and `>`). That is left to chance only for
	// the line itself, whose shell is usually bash: a script handed to sh
	// by name must read as sh reads it.
	if perr != nil && label == "" && (strings.Contains(s, "$'") || strings.Contains(s, `$"`)) {
		// Where sh stops reading, bash may read on with a quote sh does
		// not know, and hide what a sh login shell would run.
		return errors.New("cannot check the command: it uses $'...' or $\"...\" quoting, which bash and sh read differently, where sh cannot read it")
	}
	if perr != nil && label == "" && strings.Contains(perr.Error(), "redirects are a bash") {
		// dash reads on where the parser stops at bash's redirections
		// (`&>` is `&` and `>`, `{fd}>` a word and `>`), and runs the
		// words of bash's [[ ]] and (( )) as commands: `[[ x || rm -rf
		// v ]]`, `((rm v))`. From the statement sh's reading could not
		// take, bash's reading is not sh's. (Where the parser stops at
		// other bash syntax, such as @(a|b) or a=(1 2), dash stops too.)
		if kw := keywordAfter(f, s, read); kw != "" {
			return fmt.Errorf("cannot check the command: sh reads it otherwise than bash from where it cannot be parsed as sh (%v), and would run the words of %s as commands; if the target's accounts log in with bash, set its ssh.login_shell to bash", perr, kw)
		}
	}
	if perr != nil && label != "" && posixShells[path.Base(strings.Fields(label)[0])] {
		return fmt.Errorf("cannot check the script given to %s: sh would read it otherwise than it can be checked (%v)", label, perr)
	}
	return nil
}

// keywordAfter returns the first of bash's [[ ]] and (( )) that starts at
// or after offset in f, parsed from src, that sh would run commands of:
// dash runs `((rm v))` as subshells, and splits `[[ x || rm v ]]` at its
// operators and lines (a [[ ]] on one line without |, &, ;, parentheses or
// < > is one command named [[ to it, which Debian does not have). "" when
// there is none.
func keywordAfter(f *syntax.File, src string, offset uint) string {
	kw := ""
	syntax.Walk(f, func(n syntax.Node) bool {
		if kw != "" || n == nil {
			return false
		}
		switch n.(type) {
		case *syntax.TestClause:
			start, end := n.Pos().Offset(), n.End().Offset()
			if start >= offset && (end > uint(len(src)) || strings.ContainsAny(src[start:end], "|&;()<>\n")) {
				kw = "[[ ]]"
			}
		case *syntax.ArithmCmd:
			if n.Pos().Offset() >= offset {
				kw = "(( ))"
			}
		}
		return kw == ""
	})
	return kw
}

// posixShells run scripts as a POSIX sh, not bash.
var posixShells = map[string]bool{"sh": true, "dash": true, "ash": true, "posh": true, "ksh": true, "ksh93": true, "mksh": true, "watch": true}

// checkSeen makes sure the walk reached every node that runs something.
func (w *walker) checkSeen(node syntax.Node) error {
	var missed syntax.Node
	syntax.Walk(node, func(n syntax.Node) bool {
		if missed != nil {
			return false
		}
		switch n := n.(type) {
		case *syntax.CallExpr:
			if len(n.Args) > 0 && !w.seen[n] {
				missed = n
			}
		case *syntax.DeclClause, *syntax.LetClause, *syntax.CmdSubst, *syntax.ProcSubst:
			if !w.seen[n] {
				missed = n
			}
		}
		return missed == nil
	})
	if missed != nil {
		return fmt.Errorf("cannot check the command at %s", missed.Pos())
	}
	return nil
}

func (w *walker) stmts(list []*syntax.Stmt, c ctx) error {
	for _, s := range list {
		if err := w.stmt(s, c); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) stmt(s *syntax.Stmt, c ctx) error {
	if s == nil {
		return nil
	}
	if call, ok := s.Cmd.(*syntax.CallExpr); ok && len(call.Args) > 0 && nameTakers[path.Base(call.Args[0].Lit())] {
		// read x <<< 'a[$(cmd)]' stores text that bash runs when x is
		// evaluated as arithmetic.
		for _, r := range s.Redirs {
			for _, word := range []*syntax.Word{r.Word, r.Hdoc} {
				if word != nil && holdsSubscriptSubst(scan(word).lits) {
					return fmt.Errorf("cannot check %s: its input holds a subscript that runs a command when bash evaluates it", excerpt(s, c.src))
				}
			}
		}
	}
	// Redirections written before the command come first in source order.
	var after []*syntax.Redirect
	for _, r := range s.Redirs {
		if s.Cmd != nil && s.Cmd.Pos().After(r.Pos()) {
			if err := w.redirect(r, c); err != nil {
				return err
			}
			continue
		}
		after = append(after, r)
	}
	if s.Cmd != nil {
		if err := w.command(s.Cmd, c); err != nil {
			return err
		}
	}
	for _, r := range after {
		if err := w.redirect(r, c); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) redirect(r *syntax.Redirect, c ctx) error {
	if err := w.word(r.Word, c); err != nil {
		return err
	}
	if err := heredocEnd(r, c); err != nil {
		return err
	}
	switch r.Op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.RdrAll, syntax.AppAll, syntax.RdrInOut, syntax.DplOut:
		a := analyze(r.Word, c.src)
		if r.Op == syntax.DplOut && (a.text == "-" || isInteger(a)) {
			break // >&2, >&-: a descriptor, not a file
		}
		// The literal text decides: ~/.bashrc and $HOME/.bashrc are the
		// file too. A dotfile path made at run time (~/.bash$x,
		// ~/.ssh/$x) may be one.
		if startupFile(a.lits) || !a.plain && (strings.Contains(a.lits, "/.") || strings.HasPrefix(a.lits, ".")) {
			return fmt.Errorf("cannot let the command write %s: the target's shell or sshd may run it at the next login, unchecked", a.src)
		}
	}
	return w.word(r.Hdoc, c)
}

// startupFile reports whether path names a file a login shell or sshd
// reads and runs at login.
func startupFile(p string) bool {
	base := path.Base(p)
	switch base {
	case ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".bash_aliases", ".forward", ".profile", ".zshrc", ".zshenv", ".zprofile",
		".zlogin", ".kshrc", ".mkshrc", ".cshrc", ".tcshrc", ".login", ".pam_environment", "authorized_keys":
		return true
	case "rc", "environment":
		return path.Base(path.Dir(p)) == ".ssh"
	}
	return false
}

// heredocEnd refuses a here-document whose body bash may end earlier than
// it was read here: in an unquoted one bash joins a line ending in a
// backslash with the next before looking for the delimiter ("E\" and an
// empty line end it), and what follows the early end runs as commands.
func heredocEnd(r *syntax.Redirect, c ctx) error {
	if r.Hdoc == nil || (r.Op != syntax.Hdoc && r.Op != syntax.DashHdoc) {
		return nil
	}
	delim := r.Word.Lit()
	if delim == "" || strings.ContainsAny(delim, `'"`) {
		return nil // quoted: bash takes the body as it is
	}
	start, end := r.Hdoc.Pos().Offset(), r.Hdoc.End().Offset()
	if start >= end || end > uint(len(c.src)) {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(strings.ReplaceAll(c.src[start:end], "\\\n", ""), "\n"), "\n")
	for i, line := range lines {
		if r.Op == syntax.DashHdoc {
			line = strings.TrimLeft(line, "\t")
		}
		if line == delim && i < len(lines)-1 {
			return fmt.Errorf("cannot check the here-document ending %s: bash may end it earlier than it reads here", delim)
		}
	}
	return nil
}

func (w *walker) command(cmd syntax.Command, c ctx) error {
	switch x := cmd.(type) {
	case *syntax.CallExpr:
		return w.call(x, c)
	case *syntax.IfClause:
		for ; x != nil; x = x.Else {
			if err := w.stmts(x.Cond, c); err != nil {
				return err
			}
			if err := w.stmts(x.Then, c); err != nil {
				return err
			}
		}
		return nil
	case *syntax.WhileClause:
		if err := w.stmts(x.Cond, c); err != nil {
			return err
		}
		return w.stmts(x.Do, c)
	case *syntax.ForClause:
		switch l := x.Loop.(type) {
		case *syntax.WordIter:
			// Each item becomes the variable's value, as an assignment's.
			for _, item := range l.Items {
				if err := w.value(l.Name, item, c); err != nil {
					return err
				}
				w.given(l.Name.Value, isInteger(scan(item)))
			}
			if len(l.Items) == 0 {
				w.given(l.Name.Value, false) // the positional parameters
			}
		case *syntax.CStyleLoop:
			for _, e := range []syntax.ArithmExpr{l.Init, l.Cond, l.Post} {
				if err := w.arith(e, c); err != nil {
					return err
				}
			}
		default:
			return unsupported(l, c)
		}
		return w.stmts(x.Do, c)
	case *syntax.CaseClause:
		if err := w.word(x.Word, c); err != nil {
			return err
		}
		for _, item := range x.Items {
			if err := w.words(item.Patterns, c); err != nil {
				return err
			}
			if err := w.stmts(item.Stmts, c); err != nil {
				return err
			}
		}
		return nil
	case *syntax.Block:
		return w.stmts(x.Stmts, c)
	case *syntax.Subshell:
		return w.stmts(x.Stmts, c)
	case *syntax.BinaryCmd:
		if err := w.stmt(x.X, c); err != nil {
			return err
		}
		return w.stmt(x.Y, c)
	case *syntax.FuncDecl:
		// The body is checked where it is declared, so every call of the
		// function, whatever its name, is covered.
		return w.stmt(x.Body, c)
	case *syntax.ArithmCmd:
		return w.arith(x.X, c)
	case *syntax.TestClause:
		return w.test(x.X, c)
	case *syntax.DeclClause:
		return w.decl(x, c)
	case *syntax.LetClause:
		return w.let(x, c)
	case *syntax.TimeClause:
		// bash takes `time -- CMD` as timing CMD; the parser reads a
		// command named --.
		if x.Stmt == nil {
			return nil // time alone times nothing
		}
		if call, ok := x.Stmt.Cmd.(*syntax.CallExpr); ok && len(call.Args) > 1 && call.Args[0].Lit() == "--" {
			if looksAssigned(scan(call.Args[1]).lits) {
				// bash takes it as an assignment, the parser as the
				// program's name.
				return fmt.Errorf("cannot check %s: after time --, bash takes NAME=VALUE as an assignment", excerpt(x, c.src))
			}
			inner := *x.Stmt
			trimmed := *call
			trimmed.Args = call.Args[1:]
			inner.Cmd = &trimmed
			w.seen[call] = true // walked as trimmed
			return w.stmt(&inner, c)
		}
		return w.stmt(x.Stmt, c)
	case *syntax.CoprocClause:
		if err := w.word(x.Name, c); err != nil {
			return err
		}
		return w.stmt(x.Stmt, c)
	default:
		return unsupported(cmd, c)
	}
}

// looksAssigned reports whether a word starts as an assignment does:
// NAME=, NAME+= or NAME[.
func looksAssigned(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9':
		case i > 0 && (c == '=' || c == '[' || c == '+' && i+1 < len(s) && s[i+1] == '='):
			return true
		default:
			return false
		}
	}
	return false
}

func unsupported(n syntax.Node, c ctx) error {
	return fmt.Errorf("cannot check the shell construct at %s: %s", n.Pos(), excerpt(n, c.src))
}

// excerpt returns the source text of a node, shortened for messages.
func excerpt(n syntax.Node, src string) string {
	start, end := n.Pos().Offset(), n.End().Offset()
	if start >= end || end > uint(len(src)) {
		return fmt.Sprintf("%T", n)
	}
	s := src[start:end]
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func (w *walker) call(x *syntax.CallExpr, c ctx) error {
	for _, a := range x.Assigns {
		if err := w.assign(a, c); err != nil {
			return err
		}
	}
	if len(x.Args) == 0 {
		return nil
	}
	w.seen[x] = true
	args := make([]arg, len(x.Args))
	for i, word := range x.Args {
		args[i] = analyze(word, c.src)
	}
	if err := w.run(args, c); err != nil {
		return err
	}
	return w.words(x.Args, c)
}

func (w *walker) assign(a *syntax.Assign, c ctx) error {
	if a == nil {
		return nil
	}
	if a.Name != nil {
		num := a.Value == nil || isInteger(scan(a.Value)) || arithOnly(a.Value) || specialNumber(a.Value)
		if a.Array != nil {
			for _, e := range a.Array.Elems {
				num = num && e.Value != nil && isInteger(scan(e.Value))
			}
		}
		w.given(a.Name.Value, num)
	}
	if err := w.arith(a.Index, c); err != nil {
		return err
	}
	if err := w.value(a.Name, a.Value, c); err != nil {
		return err
	}
	if a.Array != nil {
		for _, e := range a.Array.Elems {
			if err := w.arith(e.Index, c); err != nil {
				return err
			}
			if err := w.value(a.Name, e.Value, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// value walks the value of an assignment. Literal text that holds a command
// substitution is refused: bash runs it when the variable is later used as a
// prompt (PS4 under set -x, ${X@P}) or in an array subscript, and none of
// those uses can be seen here.
func (w *walker) value(name *syntax.Lit, v *syntax.Word, c ctx) error {
	if v == nil {
		return nil
	}
	if name != nil && (name.Value == "BASH_ALIASES" || name.Value == "BASH_CMDS") {
		return fmt.Errorf("cannot check an assignment to %s: it changes what a command name runs", name.Value)
	}
	if name != nil && codeVar(name.Value) && !promptVars[name.Value] {
		return fmt.Errorf("cannot check an assignment to %s: it makes commands run code of its choosing", name.Value)
	}
	if name != nil && commandVar(name.Value) {
		// A program runs the value as a command (GIT_SSH_COMMAND=...).
		a := scan(v)
		if !a.plain {
			return fmt.Errorf("cannot check the value of %s: a command made at run time", name.Value)
		}
		if err := w.script(strings.TrimPrefix(a.text, "|"), c, name.Value); err != nil {
			return err
		}
	}
	if name != nil && promptVars[name.Value] && (!scan(v).plain || strings.ContainsAny(scan(v).lits, "$`")) {
		return fmt.Errorf("cannot check the value of %s: a prompt built at run time may run commands", name.Value)
	}
	if holdsSubst(scan(v).lits) {
		what := "a value"
		if name != nil {
			what = "the value of " + name.Value
		}
		return fmt.Errorf("cannot check %s: %s holds a command substitution that may run later", what, sourceOf(v, c.src))
	}
	return w.word(v, c)
}

func (w *walker) decl(x *syntax.DeclClause, c ctx) error {
	w.seen[x] = true
	for _, a := range x.Args {
		if a.Naked && a.Name == nil && a.Value != nil {
			if opt := scan(a.Value); !opt.plain || strings.HasPrefix(opt.text, "-") && strings.ContainsAny(opt.text, "in") {
				// -i evaluates every value given the variable as
				// arithmetic; -n makes a name stand for another.
				return fmt.Errorf("cannot check `%s %s`: integer and reference variables cannot be followed", x.Variant.Value, sourceOf(a.Value, c.src))
			}
		}
	}
	argv := []string{x.Variant.Value}
	for _, a := range x.Args {
		argv = append(argv, w.assignText(a, c))
	}
	if err := w.emit(argv, c); err != nil {
		return err
	}
	for _, a := range x.Args {
		if err := w.assign(a, c); err != nil {
			return err
		}
	}
	return nil
}

// assignText renders a declaration argument the way an argument is shown.
func (w *walker) assignText(a *syntax.Assign, c ctx) string {
	if a.Name == nil {
		if a.Value == nil {
			return ""
		}
		return analyze(a.Value, c.src).text
	}
	if a.Index == nil && a.Array == nil {
		if a.Naked {
			return a.Name.Value
		}
		op := "="
		if a.Append {
			op = "+="
		}
		if a.Value == nil {
			return a.Name.Value + op
		}
		if v := analyze(a.Value, c.src); v.lit {
			return a.Name.Value + op + v.text
		}
	}
	return excerpt(a, c.src)
}

func (w *walker) let(x *syntax.LetClause, c ctx) error {
	w.seen[x] = true
	argv := []string{"let"}
	for _, e := range x.Exprs {
		argv = append(argv, excerpt(e, c.src))
	}
	if err := w.emit(argv, c); err != nil {
		return err
	}
	for _, e := range x.Exprs {
		if err := w.arith(e, c); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) words(list []*syntax.Word, c ctx) error {
	for _, word := range list {
		if err := w.word(word, c); err != nil {
			return err
		}
	}
	return nil
}

// word walks the command and process substitutions in a word.
func (w *walker) word(word *syntax.Word, c ctx) error {
	if word == nil {
		return nil
	}
	if err := joined(word.Parts); err != nil {
		return err
	}
	for _, p := range word.Parts {
		if err := w.part(p, c); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) part(p syntax.WordPart, c ctx) error {
	switch x := p.(type) {
	case nil, *syntax.Lit, *syntax.SglQuoted:
		return nil
	case *syntax.ExtGlob:
		// The parser keeps an extended glob's pattern as raw text, but
		// bash expands it: a substitution inside (`[[ x == @($(cmd)) ]]`,
		// where [[ turns extended globs on by itself) runs a command no
		// node stands for.
		if v := x.Pattern.Value; strings.ContainsAny(v, "$`") || strings.Contains(v, "<(") || strings.Contains(v, ">(") {
			return fmt.Errorf("cannot check the extended glob %s(%s): it expands at run time", x.Op, v)
		}
		return nil
	case *syntax.DblQuoted:
		if err := joined(x.Parts); err != nil {
			return err
		}
		for _, dp := range x.Parts {
			if err := w.part(dp, c); err != nil {
				return err
			}
		}
		return nil
	case *syntax.ParamExp:
		return w.paramExp(x, c)
	case *syntax.CmdSubst:
		w.seen[x] = true
		return w.stmts(x.Stmts, c)
	case *syntax.ProcSubst:
		w.seen[x] = true
		return w.stmts(x.Stmts, c)
	case *syntax.ArithmExp:
		return w.arith(x.X, c)
	case *syntax.BraceExp:
		return w.words(x.Elems, c)
	default:
		return unsupported(p, c)
	}
}

// allIndex reports whether a subscript is [@] or [*]: ${!a[@]} lists keys.
func allIndex(e syntax.ArithmExpr) bool {
	w, ok := e.(*syntax.Word)
	return ok && (w.Lit() == "@" || w.Lit() == "*")
}

// joined refuses literal text the parser split where the shell joins it
// into an expansion: a "$" ending one line and "(cmd)" starting the next,
// joined by a backslash, is "$(cmd)" to bash and dash in double quotes or
// a here-document, while the parser drops the backslash-newline and keeps
// "$" and "(cmd)" apart, as text.
func joined(parts []syntax.WordPart) error {
	for i := 1; i < len(parts); i++ {
		prev, ok1 := parts[i-1].(*syntax.Lit)
		next, ok2 := parts[i].(*syntax.Lit)
		if !ok1 || !ok2 || prev.Value == "" || next.Value == "" {
			continue
		}
		last, first := prev.Value[len(prev.Value)-1], next.Value[0]
		if (last == '$' || last == '<' || last == '>') && (first == '(' || first == '{' || first == '[' || isWordByte(first)) || last == '$' && strings.IndexByte("#?!@*-", first) >= 0 {
			return fmt.Errorf("cannot check %q: a line continued there joins into an expansion", prev.Value+next.Value)
		}
	}
	return nil
}

func (w *walker) paramExp(x *syntax.ParamExp, c ctx) error {
	if x.Excl && x.Names == 0 && !allIndex(x.Index) {
		// ${!r} expands the variable r names, and evaluates a subscript in
		// that name as arithmetic: r='a[$(cmd)]' runs cmd.
		return fmt.Errorf("cannot check %s: it expands a variable named at run time", excerpt(x, c.src))
	}
	if x.Exp != nil && x.Exp.Op == syntax.OtherParamOps && x.Exp.Word != nil && strings.Contains(x.Exp.Word.Lit(), "P") {
		// Prompt expansion of a value runs the command substitutions in it.
		return fmt.Errorf("cannot check %s: it expands the variable as a prompt, which can run commands", excerpt(x, c.src))
	}
	if err := w.part(x.NestedParam, c); err != nil {
		return err
	}
	if err := w.arith(x.Index, c); err != nil {
		return err
	}
	if x.Slice != nil {
		if err := w.arith(x.Slice.Offset, c); err != nil {
			return err
		}
		if err := w.arith(x.Slice.Length, c); err != nil {
			return err
		}
	}
	if x.Repl != nil {
		if err := w.word(x.Repl.Orig, c); err != nil {
			return err
		}
		if err := w.word(x.Repl.With, c); err != nil {
			return err
		}
	}
	if x.Exp != nil {
		switch x.Exp.Op {
		case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AlternateUnset, syntax.AlternateUnsetOrNull,
			syntax.AssignUnset, syntax.AssignUnsetOrNull, syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
			// Within double quotes (and here-documents) single quotes in
			// these words quote nothing: '$(cmd)' there runs cmd.
			// And dash ends the word at the first }, quoted or not.
			if x.Exp.Word != nil {
				for _, p := range x.Exp.Word.Parts {
					if _, ok := p.(*syntax.SglQuoted); ok {
						return fmt.Errorf("cannot check %s: shells read the single quotes in it differently", excerpt(x, c.src))
					}
				}
			}
		}
		if x.Exp.Op == syntax.AssignUnset || x.Exp.Op == syntax.AssignUnsetOrNull {
			// ${X=word} and ${X:=word} assign word to X.
			w.given(x.Param.Value, x.Exp.Word == nil || isInteger(scan(x.Exp.Word)))
			return w.value(x.Param, x.Exp.Word, c)
		}
		return w.word(x.Exp.Word, c)
	}
	return nil
}

// arith walks an arithmetic expression. Quoted text in it that names an
// array element with a command substitution in the subscript is refused, as
// bash runs that substitution when it evaluates the element.
func (w *walker) arith(e syntax.ArithmExpr, c ctx) error {
	switch x := e.(type) {
	case nil:
		return nil
	case *syntax.BinaryArithm:
		switch x.Op {
		case syntax.Assgn, syntax.AddAssgn, syntax.SubAssgn, syntax.MulAssgn, syntax.QuoAssgn, syntax.RemAssgn,
			syntax.AndAssgn, syntax.OrAssgn, syntax.XorAssgn, syntax.ShlAssgn, syntax.ShrAssgn:
			w.assignedArith(x.X)
		}
		if err := w.arith(x.X, c); err != nil {
			return err
		}
		return w.arith(x.Y, c)
	case *syntax.UnaryArithm:
		if x.Op == syntax.Inc || x.Op == syntax.Dec {
			w.assignedArith(x.X)
		}
		return w.arith(x.X, c)
	case *syntax.ParenArithm:
		return w.arith(x.X, c)
	case *syntax.FlagsArithm:
		return w.arith(x.X, c)
	case *syntax.Word:
		if err := w.count(x, c); err != nil {
			return err
		}
		return w.evalWord(x, c)
	default:
		return unsupported(e, c)
	}
}

// count notes the names an arithmetic word reads: its words, quoted or
// not, and its parameters. A command's output, a positional parameter or
// a name made at run time (${!x}) read as arithmetic is refused at once.
func (w *walker) count(word *syntax.Word, c ctx) error {
	where := excerpt(word, c.src)
	var err error
	syntax.Walk(word, func(n syntax.Node) bool {
		if err != nil {
			return false
		}
		if err = w.spend(1); err != nil {
			return false
		}
		switch x := n.(type) {
		case *syntax.Lit:
			for _, name := range arithNames(x.Value) {
				w.counted[name] = where
			}
		case *syntax.SglQuoted:
			for _, name := range arithNames(x.Value) {
				w.counted[name] = where
			}
		case *syntax.ParamExp:
			switch {
			case x.Excl:
				err = fmt.Errorf("cannot check %s: arithmetic reads a variable named at run time", where)
			case x.Length:
				// ${#x} is a number, whatever x holds.
			case x.Param != nil && x.Param.Value != "" && x.Param.Value[0] >= '0' && x.Param.Value[0] <= '9':
				err = fmt.Errorf("cannot check %s: arithmetic reads a positional parameter", where)
			case x.Param != nil:
				w.counted[x.Param.Value] = where
			}
		case *syntax.CmdSubst, *syntax.ProcSubst:
			err = fmt.Errorf("cannot check %s: arithmetic reads a command's output, and bash runs commands it can hold", where)
		}
		return err == nil
	})
	return err
}

// arithNames are the names in arithmetic text. A token that starts with a
// digit is a number (16#ff and 0x1f included).
func arithNames(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch >= '0' && ch <= '9':
			for i < len(s) && (isWordByte(s[i]) || s[i] == '#' || s[i] == '@') {
				i++
			}
		case ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, s[i:j])
			i = j
		default:
			i++
		}
	}
	return out
}

func isWordByte(ch byte) bool {
	return ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9'
}

// countSubscript counts the names in the subscript of a variable named by
// text (test -v 'a[i]', printf -v 'a[i]'): bash evaluates it as
// arithmetic.
func (w *walker) countSubscript(text, where string) {
	i, j := strings.IndexByte(text, '['), strings.LastIndexByte(text, ']')
	if i < 0 || j < i {
		return
	}
	for _, name := range arithNames(text[i+1 : j]) {
		w.counted[name] = where
	}
}

// given notes a value the line gives name: a number or something else.
func (w *walker) given(name string, number bool) {
	if number {
		w.numeric[name] = true
	} else {
		w.made[name] = true
	}
}

// assignedArith notes the name an arithmetic assignment writes: it holds
// a number after.
func (w *walker) assignedArith(e syntax.ArithmExpr) {
	if word, ok := e.(*syntax.Word); ok {
		if names := arithNames(word.Lit()); len(names) > 0 {
			w.numeric[names[0]] = true
		}
	}
}

// specialNumber reports whether a word is one of the shell's numeric
// special parameters alone ($!, $#, $?, $$), quoted or not: pid=$!.
func specialNumber(w *syntax.Word) bool {
	parts := w.Parts
	if len(parts) == 1 {
		if dq, ok := parts[0].(*syntax.DblQuoted); ok && !dq.Dollar {
			parts = dq.Parts
		}
	}
	if len(parts) != 1 {
		return false
	}
	pe, ok := parts[0].(*syntax.ParamExp)
	return ok && pe.Param != nil && pe.Exp == nil && pe.Repl == nil && pe.Slice == nil && pe.Index == nil && !pe.Length && !pe.Excl &&
		(pe.Param.Value == "!" || pe.Param.Value == "#" || pe.Param.Value == "?" || pe.Param.Value == "$")
}

// arithOnly reports whether a word is one arithmetic expansion: its value
// is a number (the expansion itself is checked where it is read).
func arithOnly(w *syntax.Word) bool {
	if len(w.Parts) != 1 {
		return false
	}
	_, ok := w.Parts[0].(*syntax.ArithmExp)
	return ok
}

// isInteger reports whether a word is an integer literal.
func isInteger(a arg) bool {
	t := strings.TrimPrefix(strings.TrimPrefix(a.text, "-"), "+")
	return a.plain && t != "" && strings.Trim(t, "0123456789") == ""
}

// setByShell are variables the shell sets from input or from the words
// of commands, whatever the line assigned them before.
var setByShell = map[string]bool{"_": true, "REPLY": true, "MAPFILE": true, "BASH_REMATCH": true, "OPTARG": true, "COPROC": true, "READLINE_LINE": true}

// shellNumeric are the variables the shell keeps numeric itself.
var shellNumeric = map[string]bool{
	"#": true, "?": true, "$": true, "!": true, "RANDOM": true, "SRANDOM": true, "LINENO": true, "SECONDS": true,
	"EPOCHSECONDS": true, "BASHPID": true, "PPID": true, "UID": true, "EUID": true, "OPTIND": true,
}

// test walks a [[ ]] expression; its operands may be evaluated as
// arithmetic or as variable names, like arith's.
func (w *walker) test(e syntax.TestExpr, c ctx) error {
	switch x := e.(type) {
	case nil:
		return nil
	case *syntax.BinaryTest:
		switch x.Op {
		case syntax.TsEql, syntax.TsNeq, syntax.TsLss, syntax.TsLeq, syntax.TsGtr, syntax.TsGeq:
			// -eq and the like evaluate both sides as arithmetic.
			for _, side := range []syntax.TestExpr{x.X, x.Y} {
				if word, ok := side.(*syntax.Word); ok {
					if err := w.count(word, c); err != nil {
						return err
					}
				}
			}
		}
		if err := w.test(x.X, c); err != nil {
			return err
		}
		return w.test(x.Y, c)
	case *syntax.UnaryTest:
		if word, ok := x.X.(*syntax.Word); ok && (x.Op == syntax.TsVarSet || x.Op == syntax.TsRefVar) {
			// -v a[i] evaluates the subscript as arithmetic, of the name
			// the word becomes.
			if !scan(word).plain {
				return fmt.Errorf("cannot check %s: the name is built at run time, and bash runs what its subscript holds", excerpt(x, c.src))
			}
			w.countSubscript(scan(word).lits, excerpt(word, c.src))
		}
		return w.test(x.X, c)
	case *syntax.ParenTest:
		return w.test(x.X, c)
	case *syntax.Word:
		return w.evalWord(x, c)
	default:
		return unsupported(e, c)
	}
}

// evalWord walks a word that bash may evaluate again as a variable
// reference.
func (w *walker) evalWord(word *syntax.Word, c ctx) error {
	if holdsSubscriptSubst(scan(word).lits) {
		return fmt.Errorf("cannot check %s: bash runs the command substitution in its subscript", sourceOf(word, c.src))
	}
	return w.word(word, c)
}

// readsInput marks the command being dispatched as one that runs what it
// reads.
func (w *walker) readsInput() { w.cmds[w.last].ReadsInput = true }

// emit records one command.
func (w *walker) emit(argv []string, c ctx) error {
	// Both readings of a script report most commands twice; Commands
	// bounds what is left once they are merged.
	if len(w.cmds) >= 2*MaxCommands {
		return fmt.Errorf("the command runs more than %d commands; too many to check", MaxCommands)
	}
	text := strings.Join(argv, " ")
	// Each report copies the command's text: a wrapper's guesses at a
	// long word would copy it for each.
	if err := w.spend(len(text) / 8); err != nil {
		return err
	}
	var via []string
	if len(c.via) > 0 {
		via = append([]string(nil), c.via...)
	}
	w.cmds = append(w.cmds, Command{
		Argv:    argv,
		Text:    text,
		Via:     via,
		Known:   len(argv),
		Appends: c.open,
	})
	return nil
}

// run records a simple command given its words and, when it is a wrapper or
// an interpreter, the commands it runs in turn.
func (w *walker) run(args []arg, c ctx) error {
	if len(args) == 0 {
		return errors.New("cannot check an empty command")
	}
	if err := w.spend(len(args)); err != nil {
		return err
	}
	if len(c.via) > MaxVia {
		return fmt.Errorf("cannot check %s: it is nested in more than %d wrappers and scripts", args[0].src, MaxVia)
	}
	// A name with a quoted $ or ` in it reads like an expansion to anyone
	// writing or reviewing policy; no real program is named so.
	if !args[0].plain || strings.ContainsAny(args[0].text, "$`") {
		return fmt.Errorf("cannot tell which program runs: %s", args[0].src)
	}
	argv := make([]string, len(args))
	for i, a := range args {
		argv[i] = a.text
	}
	if err := w.emit(argv, c); err != nil {
		return err
	}
	w.last = len(w.cmds) - 1
	// A glob or a brace may become any word, or several: touch app{r,}oved
	// touches approved.
	if i := slices.IndexFunc(args, func(a arg) bool { return !a.plain || !a.single || a.filled }); i >= 0 {
		w.cmds[w.last].Known = i
	}
	return w.inner(args, c)
}
