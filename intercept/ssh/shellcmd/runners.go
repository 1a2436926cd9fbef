package shellcmd

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// shells take a script with -c and share enough of their option syntax to be
// read alike.
var shells = map[string]bool{
	"sh": true, "bash": true, "rbash": true, "dash": true, "zsh": true,
	"ksh": true, "ksh93": true, "mksh": true, "ash": true,
}

// nameTakers are builtins that take variable names, in which bash evaluates
// array subscripts.
var nameTakers = map[string]bool{
	"printf": true, "read": true, "unset": true, "test": true, "[": true,
	"mapfile": true, "readarray": true, "wait": true, "getopts": true,
}

// inner finds the commands that a wrapper or interpreter runs.
func (w *walker) inner(args []arg, c ctx) error {
	w.names[args[0].text] = true
	name := path.Base(args[0].text)
	if p := path.Clean(args[0].text); args[0].plain && (strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/dev/fd/") ||
		strings.HasPrefix(p, "/dev/std") || strings.Contains(args[0].text, "/") && (name == "exe" || inputPath(name))) {
		// /proc/self/exe (or ./exe in /proc/self) is the shell running
		// the line, under a name no table knows; /dev/fd/3, whatever was
		// opened on it.
		return fmt.Errorf("cannot tell which program `%s` runs", args[0].text)
	}
	switch {
	case shells[name]:
		return w.shell(args, c)
	case nameTakers[name]:
		for _, a := range args[1:] {
			// read x, printf -vx, mapfile 'a[i]': any name in the words
			// may get a value from input.
			names := arithNames(strings.TrimPrefix(a.lits, "-v"))
			for _, n := range names {
				w.given(n, false)
			}
			w.countSubscript(a.lits, a.src)
			if holdsSubscriptSubst(a.lits) {
				return fmt.Errorf("cannot check %s: bash runs the command substitution in its subscript", a.src)
			}
			if len(names) > 0 && (promptVars[names[0]] || names[0] == "BASH_CMDS" || names[0] == "BASH_ALIASES") {
				// read PS4, printf -v PS4: a prompt built at run time,
				// whose command substitutions bash runs when it shows it.
				return fmt.Errorf("cannot check `%s`: it sets %s at run time, and bash runs what a prompt holds", args[0].text, a.src)
			}
			if (name == "mapfile" || name == "readarray") && (!a.plain || strings.HasPrefix(a.text, "-") && strings.Contains(a.text, "C")) {
				return fmt.Errorf("cannot check `%s -C`: it runs a callback that cannot be seen", args[0].text)
			}
		}
		return w.takenNames(name, args)
	}
	if name == "set" || name == "shopt" {
		return setOptions(args)
	}
	switch {
	case runsStrings[name]:
		return fmt.Errorf("cannot check `%s`: it runs commands given as strings, later or elsewhere", args[0].text)
	case readsCommands[name]:
		w.readsInput()
		return nil
	}
	if readsProgram(name, args[1:]) {
		// And what its options run (sftp -D), read below.
		w.readsInput()
	}
	switch name {
	case "source", ".":
		w.readsInput()
		return nil
	case "busybox":
		return w.busybox(args, c)
	case "eval":
		return w.eval(args, c)
	case "sudo":
		return w.sudo(args, c)
	case "env":
		return w.env(args, c)
	case "nice":
		return w.nice(args, c)
	case "doas", "nohup", "builtin", "ionice", "timeout", "stdbuf", "setsid", "time", "command", "exec", "chroot":
		return w.optWrapper(args, c)
	case "xargs":
		return w.xargs(args, c)
	case "flock":
		return w.flock(args, c)
	case "watch":
		return w.watch(args, c)
	case "su", "runuser":
		return w.su(args, c)
	case "sg":
		return w.sg(args, c)
	case "newgrp":
		return w.missing(args, c) // it starts a shell, whatever its group
	case "find":
		return w.find(args, c)
	case "trap":
		return w.trap(args, c)
	case "alias":
		return w.alias(args, c)
	case "compgen", "complete":
		for _, a := range args[1:] {
			// -C runs a command, -F a function; -W's word list is
			// expanded as the shell expands words, its command and
			// process substitutions run: `compgen -W '$(rm -rf v)'`.
			if !a.plain || strings.HasPrefix(a.text, "-") && strings.ContainsAny(a.text, "CF") ||
				strings.ContainsAny(a.text, "$`") || strings.Contains(a.text, "<(") || strings.Contains(a.text, ">(") {
				return fmt.Errorf("cannot check `%s`: it may run a command given as a string", args[0].text)
			}
		}
	case "declare", "typeset", "local", "export", "readonly", "let":
		// Quoted (\declare) or behind builtin/command, a declaration is
		// a plain command to bash's reading, and its assignments go
		// unread. (sh's reading has no declarations: there bash's
		// reading checks them.)
		if args[0].src != args[0].text || len(c.via) > 0 && (c.via[len(c.via)-1] == "builtin" || c.via[len(c.via)-1] == "command") {
			return fmt.Errorf("cannot check `%s` written as a command: declarations are checked only as written plainly", args[0].text)
		}
	case "fc":
		// fc -s and fc -e run commands from the history, which a script
		// can write (history -s).
		return fmt.Errorf("cannot check `fc`: it runs commands from the history")
	case "enable":
		for _, a := range args[1:] {
			if !a.plain || strings.HasPrefix(a.text, "-") && strings.Contains(a.text, "f") {
				return fmt.Errorf("cannot check `enable -f`: it loads code from a file")
			}
		}
	case "jobs":
		// jobs -x COMMAND runs the command.
		for i, a := range args[1:] {
			if !a.plain {
				return unsureWord(args, a)
			}
			if a.text == "-x" {
				rest := args[i+2:]
				if len(rest) > 0 && rest[0].plain && rest[0].text == "--" {
					rest = rest[1:]
				}
				return w.wrapped(args, rest, c)
			}
			if !strings.HasPrefix(a.text, "-") {
				break
			}
			if strings.Contains(a.text, "x") {
				return unsure(args, "unknown option "+a.text)
			}
		}
	}
	if err := w.optionCommands(name, args, c); err != nil {
		return err
	}
	if anyWrapper[name] || dynamicLoader(name) {
		return w.anyWrapper(args, c)
	}
	return nil
}

// dynamicLoader reports whether name is the dynamic loader, which runs
// the program its arguments name (ld-linux-x86-64.so.2 /bin/rm -rf x;
// ld-2.31.so before glibc 2.34, ld.so.1, ld64.so.2, ld-musl-x86_64.so.1).
func dynamicLoader(name string) bool {
	return (strings.HasPrefix(name, "ld-") || strings.HasPrefix(name, "ld.so") || strings.HasPrefix(name, "ld64.so")) && strings.Contains(name, ".so")
}

// takenNames refuses a name a builtin takes (read NAME, printf -v NAME,
// test -v NAME, unset NAME) that is built at run time: bash evaluates the
// array subscript of whatever name the word becomes (set -- 'a[$(cmd)]';
// test -v "$1" runs cmd), and a name that makes the shell run code.
func (w *walker) takenNames(name string, args []arg) error {
	for _, a := range w.nameWords(name, args) {
		if !a.plain {
			return fmt.Errorf("cannot check `%s %s`: the name is built at run time, and bash runs what its subscript holds", args[0].text, a.src)
		}
		if names := arithNames(a.text); len(names) > 0 && codeVar(names[0]) {
			return fmt.Errorf("cannot check `%s %s`: it sets %s at run time, which makes a shell or the loader run code", args[0].text, a.src, names[0])
		}
	}
	return nil
}

// nameWords returns the words of a name-taking builtin that are names,
// and, where a word built at run time could be an option that makes the
// next one a name (test "$op" "$x"), that word. A word that is a number
// ($#, $?, $!, a variable the line gives only numbers) is neither.
func (w *walker) nameWords(name string, args []arg) []arg {
	var out []arg
	switch name {
	case "test", "[":
		for i := 1; i < len(args); i++ {
			a := args[i]
			if !a.single && !w.number(a) {
				// "$@", $*: several words, -v and a name among them.
				return append(out, a)
			}
			if i+1 < len(args) && (!a.plain || a.text == "-v" || a.text == "-R") && !args[i+1].plain && !w.number(args[i+1]) {
				out = append(out, args[i+1]) // "$op" "$x", -v "$x"
			}
		}
		return out
	case "getopts":
		// getopts OPTSTRING NAME [ARG...]
		if len(args) > 2 {
			out = append(out, args[2])
		}
		return out
	}
	// Options: which take a value, and which of those values is a name.
	vals, nameOpt := map[string]string{
		"printf": "v", "read": "adinNptu", "mapfile": "dnOsuCc", "readarray": "dnOsuCc", "wait": "p", "unset": "",
	}[name], map[string]byte{"printf": 'v', "read": 'a', "wait": 'p'}[name]
	operands := name == "read" || name == "mapfile" || name == "readarray" || name == "unset"
	functions := false
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if !a.plain {
			if functions || w.number(a) || startsLiterally(a) {
				break // not an option: unset -f's names, wait $!, printf "x: $x"
			}
			// Where options are read, a word made at run time may be
			// one that makes the next a name (printf "$@", wait "$o"),
			// or hold both.
			return append(out, a)
		}
		if a.text == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a.text, "-") || a.text == "-" {
			break
		}
		for j := 1; j < len(a.text); j++ {
			ch := a.text[j]
			if name == "unset" && ch == 'f' {
				functions = true
			}
			if !strings.ContainsRune(vals, rune(ch)) {
				continue
			}
			if j+1 < len(a.text) {
				if ch == nameOpt {
					out = append(out, arg{text: a.text[j+1:], lits: a.lits[j+1:], src: a.src, plain: true})
				}
			} else if i+1 < len(args) {
				i++
				if ch == nameOpt {
					out = append(out, args[i])
				}
			}
			break
		}
	}
	if operands && !functions {
		out = append(out, args[i:]...)
	}
	return out
}

// startsLiterally reports whether a word starts with a character that is
// no expansion and no dash: it cannot become an option.
func startsLiterally(a arg) bool {
	s := strings.TrimLeft(a.src, `"'`)
	return s != "" && s[0] != '$' && s[0] != '`' && s[0] != '-' && s[0] != '\\'
}

// number reports whether a word, where a name or an option would be
// refused, is one expansion of a number: $#, $?, $!, $$, ${#x}, or a
// variable that the whole line gives only numbers, which Commands checks
// once it has read the line (see numbers).
func (w *walker) number(a arg) bool {
	s := strings.TrimSuffix(strings.TrimPrefix(a.src, `"`), `"`)
	if len(s) < 2 || s[0] != '$' {
		return false
	}
	s = s[1:]
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		s = s[1 : len(s)-1]
		if strings.HasPrefix(s, "#") && len(s) > 1 {
			return true // a length
		}
	}
	if shellNumeric[s] {
		return true
	}
	if s == "" || !isName(s) {
		return false
	}
	w.numbers[s] = a.src
	return true
}

// setOptions refuses set's keyword mode (set -k, set -o keyword): every
// NAME=VALUE word of a later command is then an assignment, and
// `nice X=1 rm -rf /` runs rm.
func setOptions(args []arg) error {
	shopt := path.Base(args[0].text) == "shopt"
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !a.plain {
			if strings.HasPrefix(a.lits, "-") || strings.HasPrefix(a.lits, "+") || a.lits == "" {
				return fmt.Errorf("cannot check `%s %s`: an option built at run time", args[0].text, a.src)
			}
			if !shopt {
				return nil
			}
			continue
		}
		if a.text == "keyword" && shopt && slices.ContainsFunc(args[1:i], func(o arg) bool {
			return strings.HasPrefix(o.text, "-") && strings.Contains(o.text, "o")
		}) {
			return fmt.Errorf("cannot check `%s ... keyword`: in keyword mode NAME=VALUE words anywhere in a command are assignments", args[0].text)
		}
		if a.text == "--" || !strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "+") {
			if !shopt {
				return nil
			}
			continue
		}
		if !shopt && a.text[0] == '-' && strings.Contains(a.text[1:], "k") {
			return fmt.Errorf("cannot check `set %s`: in keyword mode NAME=VALUE words anywhere in a command are assignments", a.text)
		}
		// -o NAME, +o NAME, -eo NAME, -oe NAME: each o takes a word.
		for n := strings.Count(a.text[1:], "o"); n > 0 && !shopt && i+1 < len(args); n-- {
			i++
			if o := args[i]; !o.plain || o.text == "keyword" {
				return fmt.Errorf("cannot check `set %s %s`: in keyword mode NAME=VALUE words anywhere in a command are assignments", a.text, o.src)
			}
		}
	}
	return nil
}

// runsStrings run commands given as strings at another time or place
// (a terminal multiplexer's session); readsCommands read them from their
// input (at, batch; ed and ex, whose ! runs a shell command).
var (
	runsStrings   = map[string]bool{"tmux": true, "screen": true, "dtach": true, "abduco": true}
	readsCommands = map[string]bool{"at": true, "batch": true, "ed": true, "red": true, "ex": true}
)

// programReaders are the programs that run commands given as a program
// or as commands of their own with shell escapes (psql's \!, sqlite3's
// .shell, gdb's shell, vim's :!), and where they read them from when the
// line does not give them. Options are written as getopt has them, a
// trailing "=" for one that takes a value: program gives what it runs
// (also --version and --help, which run nothing); repl reads the input
// whatever else is given (python -i, perl -d); files names a file that
// holds it (-f FILE); valued takes a value; flags take none, or ("?")
// the rest of their word (perl -i.bak, mysql -psecret); digits take the
// next word when it is a number (make -j 4). An option in none of these
// is taken as a flag.
var programReaders = map[string]programReader{
	"python": {program: "-c= -m= -V --version -h --help", repl: "-i", valued: "-W= -X= -Q= --check-hash-based-pycs=",
		flags: "-b -B -d -E -I -O -OO -P -q -s -S -u -v -x", clusters: true, input: true},
	"pypy":    {program: "-c= -m= -V --version -h --help", repl: "-i", valued: "-W= -X=", flags: "-b -B -d -E -I -O -s -S -u -v", clusters: true, input: true},
	"ipython": {program: "-c= --version -h --help", repl: "-i", input: true},
	"perl": {program: "-e= -E= -v -V --version -h", repl: "-d", valued: "-I= -M= -m=",
		flags: "-a -c -f -n -p -s -S -t -T -u -U -w -W -X -l# -0# -C? -D? -i? -x?", clusters: true, input: true},
	"ruby": {program: "-e= -v --version -h --help", valued: "-I= -C= -E=", loads: "-r=", flags: "-a -c -d -l -n -p -s -S -w -W# -T# -K? -i? -0# -F? -x? --yjit --jit --disable-gems",
		clusters: true, input: true},
	"node": {program: "-e= --eval= -p= --print= -v --version -h --help --test --run=", repl: "-i --interactive", loads: "-r= --require= --import= --loader= --experimental-loader=",
		valued:   "--input-type= -C= --conditions= --title= --env-file= --env-file-if-exists= --disable-warning= --inspect-port= --redirect-warnings= --icu-data-dir= --openssl-config= --report-dir= --report-directory= --report-filename= --diagnostic-dir= --watch-path= --secure-heap= --secure-heap-min= --stack-trace-limit= --unhandled-rejections= --trace-event-categories= --trace-event-file-pattern= --tls-keylog= --max-old-space-size= --max-semi-space-size=",
		clusters: true, input: true},
	"php":     {program: "-r= -S= -v --version -h --help -m -i -l", repl: "-a", files: "-f=", valued: "-c= -d= -z= -t=", flags: "-n -q -e -H -C", clusters: true, input: true},
	"lua":     {program: "-e= -v", repl: "-i", loads: "-l=", clusters: true, input: true},
	"luajit":  {program: "-e= -v", repl: "-i", loads: "-l=", valued: "-b= -j= -O=", clusters: true, input: true},
	"tclsh":   {valued: "-encoding=", input: true},
	"wish":    {valued: "-encoding= -name= -display= -geometry=", input: true},
	"expect":  {program: "-c= -v", repl: "-i", files: "-f=", input: true},
	"Rscript": {program: "-e= --expr= --version --help", input: true},
	"R":       {program: "-e= --version --help", files: "-f= --file=", valued: "--encoding=", input: true, operands: -1}, // R CMD x: a subcommand
	"irb":     {program: "-v --version -h --help", valued: "-I= -r=", input: true},
	"jshell":  {program: "--version -h --help", valued: "--class-path= --module-path= -J= -R= -C=", input: true, operands: -1},
	"gnuplot": {program: "-e= -V --version -h --help", input: true, multiFile: true},
	"dc":      {program: "-e= --expression= -V --version -h --help", files: "-f= --file=", clusters: true, input: true, multiFile: true},
	"awk":     {inline: true, program: "--version -V", files: "-f= --file= -E= --exec=", valued: "-v= -F= --assign= --field-separator=", clusters: true, abbrev: true},
	"mawk":    {inline: true, program: "-W=", files: "-f=", valued: "-v= -F=", clusters: true},
	"nawk":    {inline: true, files: "-f=", valued: "-v= -F=", clusters: true},
	"sed": {inline: true, program: "-e= --expression= --version --help", files: "-f= --file=", valued: "-l= --line-length=",
		flags: "-n -E -r -i -s -u -z", clusters: true, permutes: true, abbrev: true},
	"make": {files: "-f= --file= --makefile=", digits: "-j --jobs -l --load-average --max-load", valued: "-C= --directory= -I= --include-dir= -o= --old-file= -W= --what-if=", clusters: true, operands: -1, permutes: true, abbrev: true},
	"sqlite3": {program: "-version -help", loads: "-init=", valued: "-cmd= -separator= -newline= -nullvalue= -vfs= -mmap= -pagecache== -lookaside== -maxsize= -heap==",
		operands: 1, input: true, dashDash: true, inline: true},
	"duckdb": {program: "-version -help -c=", loads: "-init=", valued: "-cmd= -separator= -newline= -nullvalue=", operands: 1, input: true, dashDash: true, inline: true},
	"gdb": {program: "-batch --batch -batch-silent --batch-silent -version --version -help --help",
		loads: "-x= --command= -ix=", valued: "-ex= --eval-command= -iex= -p= --pid= -c= --core= -d= --directory= -cd= -s= --symbols= -e= --exec= -se=",
		operands: -1, input: true, abbrev: true, stopAt: "--args"},
	"lldb": {program: "-b --batch -v --version -h --help", loads: "-s= --source=", valued: "-o= --one-line= -p= --attach-pid= -c= --core=", operands: -1, input: true},
	"psql": {program: "-c= --command= -l --list -V --version -? --help", files: "-f= --file=",
		valued:   "-d= --dbname= -h= --host= -p= --port= -U= --username= -v= --set= --variable= -P= --pset= -o= --output= -L= --log-file= -F= -R= -T=",
		clusters: true, operands: -1, input: true, permutes: true, abbrev: true},
	"mysql": {program: "-e= --execute= -V --version -? --help", valued: "-u= --user= -h= --host= -P= --port= -D= --database= -S= --socket=", flags: "-p?",
		clusters: true, operands: -1, input: true, permutes: true, abbrev: true},
	// Not a terminal, vim reads its keystrokes from its input.
	"vim":  {program: "--version -h --help", input: true, operands: -1},
	"sftp": {program: "-V", files: "-b=", valued: "-B= -c= -D= -F= -i= -J= -l= -o= -P= -R= -S= -X= -s=", clusters: true, operands: -1, input: true},
	"ftp":  {operands: -1, input: true},
	"lftp": {program: "-c= -e= --version --help", files: "-f=", valued: "-p= -u=", operands: -1, input: true, abbrev: true},
	"m4":   {valued: "-D= -U= -I= --define= --undefine= --include=", clusters: true, input: true, abbrev: true, multiFile: true},
	// crontab FILE installs a file the line does not show (as any
	// configuration written for later); with none, or -, its input.
	"crontab":  {program: "-l -r", repl: "-e", valued: "-u=", clusters: true, input: true},
	"parallel": {digits: "-j --jobs -P --max-procs", valued: "-S= --sshlogin= -a= --arg-file= --colsep= -d= -E= -I= --joblog= --results= --tmpdir= --timeout= -n= -N= -L= --delay=", input: true}, // with no command, it runs its input's lines
}

// programAliases are other names of programReaders' programs.
var programAliases = map[string]string{"nodejs": "node", "vimdiff": "vim", "view": "vim", "rvim": "vim", "rview": "vim",
	"vi": "vim", "nvim": "vim", "pypy3": "pypy", "gdb-multiarch": "gdb", "gawk": "awk", "gmake": "make", "mariadb": "mysql",
	// Debian's alternatives run vim (or whichever editor is chosen).
	"editor": "vim", "sensible-editor": "vim", "select-editor": "vim", "edit": "vim"}

// programReader: see programReaders. operands counts the leading
// operands that are no program (-1: none is, a database or a core file);
// the next is the program or its file (awk's, sed's, a script's), unless
// an option gave one. clusters: -abc is -a -b -c; permutes: options may
// follow operands (GNU getopt); input: given no program, it reads its
// input; stopAt ends its options (gdb --args: the rest is the debugged
// program's).
type programReader struct {
	program, repl, files, valued, flags, digits string
	// loads name files of code or commands loaded besides the program
	// (node -r, gdb -x, sqlite3 -init): read for the input, giving no
	// program.
	loads string
	// abbrev: long options may be abbreviated (getopt_long's programs).
	abbrev bool
	// multiFile: every operand is a program file (m4 defs.m4 -).
	multiFile          bool
	clusters, permutes bool
	operands           int
	input              bool
	stopAt             string
	// dashDash: --opt is -opt (sqlite3's single-dash long options).
	dashDash bool
	// inline: the operand at the program's place is its text (awk 1 f),
	// not a file's name.
	inline bool
}

// replModule reports whether python -m runs a module that reads commands
// from its input (code, pdb), which it is given as pkg.module.
func replModule(mod string) bool {
	first, _, _ := strings.Cut(mod, ".")
	return slices.Contains([]string{"code", "pdb", "asyncio", "sqlite3", "idlelib", "ipdb", "IPython", "bpython", "ptpython", "cmd", "_pyrepl"}, first)
}

// moduleRunners are Python modules that run another module or script
// named among their arguments (python3 -m cProfile -m code), and their
// options that take a value.
var moduleRunners = map[string]string{"runpy": "", "cProfile": "-o -s", "profile": "-o -s", "trace": "-f --file -C --coverdir --ignore-module --ignore-dir",
	"doctest": "-o --option"}

// pythonModule reports whether python -m mod, with the words after it,
// reads commands from its input: a REPL module, or a runner whose target
// (-m MOD, or its first operand) is one or names the input.
func pythonModule(mod string, rest []arg) bool {
	if replModule(mod) {
		return true
	}
	first, _, _ := strings.Cut(mod, ".")
	valued, ok := moduleRunners[first]
	if !ok {
		return false
	}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case !a.plain:
			return true
		case a.text == "-m" || a.text == "--module":
			return i+1 >= len(rest) || !rest[i+1].plain || replModule(rest[i+1].text)
		case strings.HasPrefix(a.text, "-m"):
			return replModule(a.text[2:])
		case slices.Contains(strings.Fields(valued), a.text):
			i++
		case strings.HasPrefix(a.text, "-"):
		default:
			if first == "runpy" {
				return replModule(a.text)
			}
			return inputPath(a.text)
		}
	}
	return true // no target: the module reads its input
}

// inputPath reports whether a path may name the input where a program
// reads its program or program file: by its name (stdin, tty, -), or a
// descriptor's number (/proc/self/fd/0, /dev/fd/3 after 3<&0, 0 after
// cd /dev/fd), however the directories before it are written
// (/proc/self/root/dev/stdin, ../../dev/stdin).
func inputPath(p string) bool {
	base := path.Base(path.Clean(p))
	return p == "-" || base == "stdin" || base == "tty" || base == "stdout" || base == "stderr" ||
		base != "" && strings.Trim(base, "0123456789") == ""
}

// namesInput reports whether a word anywhere among a program's arguments
// names its input as a file, alone or as an option's value
// (--env-file=/dev/stdin, -r/dev/stdin): by an absolute path to it.
func namesInput(a arg) bool {
	if !a.plain {
		return false
	}
	words := []string{a.text}
	if _, v, ok := strings.Cut(a.text, "="); ok {
		words = append(words, v)
	}
	if len(a.text) > 2 && a.text[0] == '-' && a.text[1] != '-' {
		words = append(words, a.text[2:])
	}
	for _, w := range words {
		if l := strings.ToLower(w); strings.HasPrefix(l, "php://stdin") || strings.HasPrefix(l, "php://fd/") {
			return true
		}
		w = strings.TrimPrefix(w, "file://")
		c := path.Clean(w)
		base := path.Base(c)
		if strings.HasPrefix(c, "/") && (base == "stdin" || base == "tty" ||
			strings.Contains(c, "/fd/") && strings.Trim(base, "0123456789") == "") {
			return true
		}
	}
	return false
}

// readerFor finds a program's reader by its name, or its name without a
// version or a variant (python3.11, gawk-5.1.0, vim.basic).
func readerFor(name string) (programReader, bool) {
	if r, ok := programReaders[name]; ok {
		return r, true // sqlite3, m4
	}
	if strings.HasSuffix(name, "-gdb") {
		name = "gdb" // arm-none-eabi-gdb
	}
	for _, variant := range []string{".basic", ".tiny", ".nox", ".gtk3", ".athena"} {
		name = strings.TrimSuffix(name, variant)
	}
	// A version's digits and dots, and the dash before them
	// (python3.11, gawk-5.1.0, perl5.36), not other suffixes
	// (python3-config, node-gyp).
	if v := strings.TrimRight(name, "0123456789."); v != name && v != "" {
		name = strings.TrimSuffix(v, "-")
	}
	if a, ok := programAliases[name]; ok {
		name = a
	}
	r, ok := programReaders[name]
	return r, ok
}

// optKind is what an option of a programReader does.
type optKind int

const (
	optUnknown optKind = iota
	optFlag
	optProgram
	optREPL
	optFile
	optLoad
	optValued
)

// kind finds an option among the reader's, and how many values it takes
// (a "=" each). A long option may be abbreviated, as getopt allows (--fi
// for --file), when what it abbreviates does one thing.
func (r programReader) kind(opt string) (k optKind, values int) {
	if r.dashDash && strings.HasPrefix(opt, "--") {
		opt = opt[1:]
	}
	found := 0
	for _, set := range []struct {
		k    optKind
		list string
	}{{optProgram, r.program}, {optREPL, r.repl}, {optFile, r.files}, {optLoad, r.loads}, {optValued, r.valued}, {optFlag, r.flags}} {
		for _, o := range strings.Fields(set.list) {
			name := strings.TrimRight(o, "=")
			v := len(o) - len(name)
			if n, ok := strings.CutSuffix(o, "?"); ok {
				name, v = n, -1 // the rest of the word, if any
			} else if n, ok := strings.CutSuffix(o, "#"); ok {
				name, v = n, -2 // the digits after it, if any (perl -l0d)
			}
			switch {
			case name == opt:
				return set.k, v
			case r.abbrev && strings.HasPrefix(opt, "--") && len(opt) > 2 && strings.HasPrefix(name, opt):
				if found > 0 && (set.k != k || v != values) {
					return optUnknown, 0 // ambiguous
				}
				k, values, found = set.k, v, found+1
			}
		}
	}
	return k, values
}

// readsProgram reports whether a program given its arguments reads what
// it runs from its input, which cannot be seen, as a shell without -c
// does: no program on the line where it then reads its input, a REPL
// option or module, the input named as its program or program file
// (/dev/stdin, -f -), or a word known only at run time where its
// program would be. An operand naming a file is taken as a script file:
// what it holds is for the policy's patterns of the line to judge.
func readsProgram(name string, args []arg) bool {
	r, ok := readerFor(name)
	if !ok {
		return false
	}
	for _, a := range args {
		if namesInput(a) {
			return true // anywhere: python3 -m cProfile /dev/stdin
		}
		if a.plain && a.text == r.stopAt {
			break
		}
	}
	python := strings.HasPrefix(name, "python") || strings.HasPrefix(name, "pypy")
	if tcl := strings.HasPrefix(name, "tclsh") || strings.HasPrefix(name, "wish"); tcl && len(args) > 0 && args[0].plain &&
		strings.HasPrefix(args[0].text, "-") && args[0].text != "-encoding" {
		// tclsh -a b: no script, every word an argument, the program
		// read from the input.
		return true
	}
	given, operands, stop := false, 0, false
	// option handles an option (or a cluster's letter) of kind k taking
	// values words; v is its attached value, if any. It reports whether
	// the program then reads its input.
	var i int
	next := func() string {
		if i+1 < len(args) {
			i++
			return args[i].text
		}
		return ""
	}
	option := func(opt string, k optKind, values int, v string, attached bool) bool {
		switch {
		case values > 0 && !attached:
			v = next()
			for range values - 1 {
				next()
			}
		case values == 0 && slices.Contains(strings.Fields(r.digits), opt) && i+1 < len(args) &&
			strings.Trim(args[i+1].text, "0123456789.") == "":
			next() // make -j 4
		}
		if python && opt == "-m" && (pythonModule(v, args[i+1:]) || i < len(args) && !args[i].plain) {
			return true
		}
		if python && (opt == "-m" || opt == "-c") {
			stop = true // the rest are the module's or the code's
		}
		switch k {
		case optREPL:
			return true
		case optFile, optLoad:
			if inputPath(v) || namesInput(arg{text: v, plain: true}) || i < len(args) && !args[i].plain {
				return true // also a value known only at run time
			}
			given = given || k == optFile
		case optProgram:
			given = true
		}
		return false
	}
	for i = 0; i < len(args) && !stop; i++ {
		a := args[i].text
		switch {
		case r.stopAt != "" && a == r.stopAt:
			return !given && r.input
		case a == "--":
			// The rest are operands: the one at the program's place
			// gives it, unless an option did.
			rest, need := args[i+1:], r.operands-operands
			if given || r.operands < 0 || len(rest) <= need {
				return !given && r.input
			}
			return !r.inline && inputPath(rest[need].text) || !rest[need].plain
		case a == "-":
			return true
		case !strings.HasPrefix(a, "-") || !args[i].plain:
			switch {
			case r.multiFile:
				if !args[i].plain || inputPath(a) {
					return true
				}
				given = true
				continue
			case name == "R" && a == "CMD" && operands == 0:
				return false // R CMD check: a subcommand
			case strings.HasPrefix(name, "node") && (a == "inspect" || a == "debug") && operands == 0:
				return true // node's debugger, reading commands
			case strings.HasPrefix(name, "parallel") && strings.HasPrefix(a, ":::") && !given:
				return true // the arguments are the commands
			}
			script := !given && r.operands >= 0 && operands >= r.operands
			if !script {
				operands++
				continue
			}
			if !args[i].plain || !r.inline && inputPath(a) {
				// A glob, a substitution, <(cat), ../dev/stdin: it may
				// name the input.
				return true
			}
			if python {
				return false // the rest are the script's
			}
			given = true
			if !r.permutes {
				return false
			}
		case strings.HasPrefix(a, "--"):
			opt, v, attached := strings.Cut(a, "=")
			k, values := r.kind(opt)
			if option(opt, k, values, v, attached) {
				return true
			}
		default:
			k, values := r.kind(a)
			if k != optUnknown || !r.clusters || len(a) <= 2 {
				if option(a, k, values, "", false) {
					return true
				}
				continue
			}
			// -Atc: letters; once one takes a value, the rest of the
			// word is it (or the next word is).
			for j := 1; j < len(a); j++ {
				l := "-" + a[j:j+1]
				k, values := r.kind(l)
				if values == -2 {
					for j+1 < len(a) && a[j+1] >= '0' && a[j+1] <= '9' {
						j++
					}
					continue
				}
				if k == optREPL && j+1 < len(a) && (a[j+1] == ':' || a[j+1] == '=') {
					break // perl -d:NYTProf: a profiler, not the debugger
				}
				if values == 0 {
					if option(l, k, 0, "", false) {
						return true
					}
					continue
				}
				rest := a[j+1:]
				if values < 0 || rest != "" {
					// perl -i.bak, -C, mysql -psecret; -fFILE
					if option(l, k, max(values, 0), rest, true) {
						return true
					}
				} else if option(l, k, values, "", false) {
					return true
				}
				break
			}
		}
	}
	return !given && r.input
}

// promptVars are the variables whose values bash expands as prompts (and
// PROMPT_COMMAND, which it runs).
var promptVars = map[string]bool{"PS0": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true, "PROMPT_COMMAND": true}

// anyWrapper run a command given among their arguments, after options
// corral does not track one by one. Every plain word that could start
// that command is checked as its start.
var anyWrapper = map[string]bool{
	"taskset": true, "setpriv": true, "chrt": true, "prlimit": true, "unshare": true, "nsenter": true,
	"numactl": true, "strace": true, "ltrace": true, "systemd-run": true, "pkexec": true, "fakeroot": true,
	"eatmydata": true, "setarch": true, "linux32": true, "linux64": true, "unbuffer": true, "faketime": true,
	"cgexec": true, "firejail": true, "chpst": true, "catchsegv": true, "valgrind": true, "torsocks": true,
	"proxychains": true, "proxychains4": true, "dbus-launch": true, "xvfb-run": true, "caffeinate": true,
	"systemd-inhibit": true, "capsh": true, "script": true, "ssh-agent": true, "gpg-agent": true, "logsave": true,
	"dbus-run-session": true, "ld.so": true, "choom": true, "fakeroot-sysv": true, "fakeroot-tcp": true,
	"memusage": true, "sotruss": true, "uclampset": true, "heaptrack": true, "valgrind.bin": true, "luit": true,
	"systemd-cat": true, "perf": true, "dpkg-architecture": true, "chronic": true, "ifne": true,
}

// commandGiven reports whether a wrapper of shellWithout is surely given
// a command: script with -c, setarch under an architecture's name (its
// options take no value) with a word that is no option. For the others a
// word may be an option's value (unshare --setgroups deny, nsenter -t 1),
// so they count as reading input whatever follows.
func commandGiven(base string, args []arg) bool {
	for _, a := range args[1:] {
		short := strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--")
		switch {
		case base == "script":
			if short && strings.Contains(a.text, "c") || strings.HasPrefix(a.text, "--command") {
				return true
			}
		case archNames[base] && !strings.HasPrefix(a.text, "-"):
			return true
		}
	}
	return false
}

// shellWithout are the wrappers of anyWrapper that start a shell when
// given no command (see commandGiven).
var shellWithout = map[string]bool{
	"script": true, "fakeroot": true, "ssh-agent": true, "unshare": true, "nsenter": true, "setarch": true,
	"firejail": true, "capsh": true, "dbus-run-session": true,
}

// archNames are setarch's names that are architectures.
var archNames = map[string]bool{}

func init() {
	// setarch under any of its names (see anyWrapper).
	for _, arch := range []string{"linux32", "linux64", "i386", "i486", "i586", "i686", "x86_64", "uname26", "ia64",
		"ppc", "ppc32", "ppc64", "ppc64le", "s390", "s390x", "sparc", "sparc32", "sparc32bash", "sparc64", "mips",
		"mips32", "mips64", "arm", "armh", "armv7l", "armv8l", "aarch64", "alpha", "parisc", "parisc32", "parisc64",
		"loongarch", "loongarch64", "riscv64"} {
		anyWrapper[arch], shellWithout[arch], archNames[arch] = true, true, true
	}
}

// maxWrapWords bounds the words anyWrapper's guesses copy, over a whole
// command line: each guess copies the words after it.
const maxWrapWords = 4096

// anyWrapper checks, for a wrapper whose options are not in a table, each
// plain word not starting with '-' as the start of the command it runs: one
// of them is, and whichever it is has been checked. `script -c CMD` runs
// CMD with the user's shell, so a word after -c (or -qc) is also read as a
// script.
func (w *walker) anyWrapper(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		// Words xargs appends could be the command, or start it.
		return err
	}
	if base := path.Base(args[0].text); shellWithout[base] && !commandGiven(base, args) {
		w.readsInput()
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !a.plain {
			// It could be the program; which one cannot be told.
			return unsureWord(args, a)
		}
		// -c SCRIPT, -qc SCRIPT, -cSCRIPT, --command SCRIPT and
		// --command=SCRIPT: the script is read as one. getopt_long also
		// takes an abbreviation (--comm=SCRIPT), which is not.
		if n, _, _ := strings.Cut(a.text, "="); len(n) > 2 && strings.HasPrefix(n, "--") && n != "--command" && strings.HasPrefix("--command", n) {
			return unsure(args, "an abbreviated option "+a.text)
		}
		if v, ok := strings.CutPrefix(a.text, "--command="); ok {
			if err := w.script(v, c, args[0].text+" --command"); err != nil {
				return err
			}
			continue
		}
		short := strings.HasPrefix(a.text, "-") && !strings.HasPrefix(a.text, "--")
		if at := strings.IndexByte(a.text, 'c'); short && at > 0 && at < len(a.text)-1 {
			if err := w.script(a.text[at+1:], c, args[0].text+" -c"); err != nil {
				return err
			}
		}
		if (short && strings.HasSuffix(a.text, "c") || a.text == "--command") && i+1 < len(args) {
			next := args[i+1]
			if !next.plain {
				return builtAtRunTime(next)
			}
			if err := w.script(next.text, c, args[0].text+" "+a.text); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(a.text, "-") || strings.ContainsAny(a.text, "$`") {
			continue
		}
		if w.wrapWords += len(args) - i; w.wrapWords > maxWrapWords {
			return fmt.Errorf("cannot check `%s`: too many words could start the command it runs", args[0].text)
		}
		if err := w.run(args[i:], c.inside(args[0].text)); err != nil {
			return err
		}
	}
	return nil
}

func unsure(args []arg, why string) error {
	return fmt.Errorf("cannot tell which command `%s` runs: %s", args[0].text, why)
}

func unsureWord(args []arg, a arg) error {
	return unsure(args, a.src)
}

func builtAtRunTime(a arg) error {
	return fmt.Errorf("cannot check a script built at run time: %s", a.src)
}

// wrapped runs the command in rest on behalf of the wrapper args, or handles
// its absence: a wrapper without a command runs nothing, unless xargs is
// about to append words that would become the command.
func (w *walker) wrapped(args, rest []arg, c ctx) error {
	if len(rest) == 0 {
		return w.missing(args, c)
	}
	return w.run(rest, c.inside(args[0].text))
}

func (w *walker) missing(args []arg, c ctx) error {
	if c.open {
		return unsure(args, "its command is read from input at run time")
	}
	if startsShell[path.Base(args[0].text)] {
		w.readsInput()
	}
	return nil
}

// startsShell are the wrappers that start a shell when given no command.
var startsShell = map[string]bool{"sudo": true, "doas": true, "su": true, "runuser": true, "chroot": true, "sg": true, "newgrp": true}

// refuseOpen refuses commands that would read words appended by xargs as
// code or as options.
func refuseOpen(args []arg, c ctx) error {
	if c.open {
		return unsure(args, "its arguments are read from input at run time")
	}
	return nil
}

// optSpec describes a program's options the way getopt_long sees them.
type optSpec struct {
	flags    string   // short options without a value
	vals     string   // short options with a value, attached or in the next word
	optVals  string   // short options whose value, if any, is attached
	long     []string // long options without a value
	longVals []string // long options with a value, after = or in the next word
	longOpts []string // long options whose value, if any, follows =
	// permute reads options after operands too, as getopt does without a
	// leading "+"; the operands are returned in order.
	permute bool
}

type opt struct {
	name string // the letter or the long name
	val  string
	// word indexes the word that held the value, or is 0 when the value
	// was part of the option word.
	word int
}

type parsed struct {
	opts []opt
	// rest holds the operands: with permute all of them, else the words
	// from the first operand on.
	rest []arg
	// short is set when an option's value is missing; the program fails.
	short bool
}

func (p parsed) has(names ...string) bool {
	for _, o := range p.opts {
		if slices.Contains(names, o.name) {
			return true
		}
	}
	return false
}

// val returns the last of the named options, as the last one given wins.
func (p parsed) val(names ...string) (opt, bool) {
	var v opt
	ok := false
	for _, o := range p.opts {
		if slices.Contains(names, o.name) {
			v, ok = o, true
		}
	}
	return v, ok
}

// parseOpts reads the options in args[1:]. A word that may turn into an
// option at run time, or an option missing from spec, is an error: guessing
// where the command starts could miss it.
func parseOpts(args []arg, spec optSpec) (parsed, error) {
	var p parsed
	var i int
	// next takes an option's value from the word after it; false when
	// there is none (the command is cut short) or it may expand.
	next := func(o opt) (opt, bool, error) {
		if i+1 >= len(args) {
			p.short = true
			return o, false, nil
		}
		i++
		if !args[i].single {
			return o, false, unsureWord(args, args[i])
		}
		o.val, o.word = args[i].text, i
		return o, true, nil
	}
	for i = 1; i < len(args); i++ {
		a := args[i]
		if !a.plain {
			if !spec.permute && isOperand(a) {
				p.rest = args[i:]
				return p, nil
			}
			return p, unsureWord(args, a)
		}
		t := a.text
		if t == "--" {
			p.rest = append(p.rest, args[i+1:]...)
			return p, nil
		}
		if t == "-" || !strings.HasPrefix(t, "-") {
			if !spec.permute {
				p.rest = args[i:]
				return p, nil
			}
			p.rest = append(p.rest, a)
			continue
		}
		if strings.HasPrefix(t, "--") {
			name, val, hasVal := strings.Cut(t[2:], "=")
			switch {
			case slices.Contains(spec.long, name) && !hasVal:
				p.opts = append(p.opts, opt{name: name})
			case slices.Contains(spec.longOpts, name):
				p.opts = append(p.opts, opt{name: name, val: val})
			case slices.Contains(spec.longVals, name):
				o := opt{name: name, val: val}
				if !hasVal {
					var ok bool
					var err error
					if o, ok, err = next(o); !ok {
						return p, err
					}
				}
				p.opts = append(p.opts, o)
			default:
				return p, unsure(args, "unknown option "+t)
			}
			continue
		}
		for j := 1; j < len(t); j++ {
			ch := t[j : j+1]
			switch {
			case strings.Contains(spec.flags, ch):
				p.opts = append(p.opts, opt{name: ch})
				continue
			case strings.Contains(spec.optVals, ch):
				p.opts = append(p.opts, opt{name: ch, val: t[j+1:]})
			case strings.Contains(spec.vals, ch):
				o := opt{name: ch, val: t[j+1:]}
				if o.val == "" {
					var ok bool
					var err error
					if o, ok, err = next(o); !ok {
						return p, err
					}
				}
				p.opts = append(p.opts, o)
			default:
				return p, unsure(args, "unknown option -"+ch+" in "+t)
			}
			break
		}
	}
	return p, nil
}

// isOperand reports whether a word that is not plain is, whatever it
// expands to, one word that does not start with "-", so getopt takes it for
// an operand. A leading ~ does not qualify: it expands to $HOME, $PWD or
// $OLDPWD, which the script itself may have set to anything.
func isOperand(a arg) bool {
	if !a.single {
		return false
	}
	if a.lit {
		return a.text == "" || a.text[0] != '-' && a.text[0] != '~'
	}
	s := a.src
	return s != "" && !strings.ContainsRune("-~$`\"'\\", rune(s[0]))
}

// shell handles sh -c SCRIPT and its kin. Without -c the shell reads a file
// or its input, which cannot be seen here; it is reported as it is.
func (w *walker) shell(args []arg, c ctx) error {
	cmode := false
	// An interactive shell reads a start-up file of its choosing as a
	// script (--rcfile /dev/stdin -ic true).
	rcfile, interactive := false, false
	i := 1
options:
	for ; i < len(args); i++ {
		a := args[i]
		if !a.plain {
			if isOperand(a) {
				break
			}
			if cmode {
				return builtAtRunTime(a)
			}
			return unsureWord(args, a)
		}
		t := a.text
		switch {
		case t == "--" || t == "-":
			i++
			break options
		case strings.HasPrefix(t, "--"):
			switch strings.TrimPrefix(t, "--") {
			case "norc", "noprofile", "login", "posix", "restricted", "verbose",
				"noediting", "debugger", "dump-strings", "dump-po-strings",
				"help", "version", "pretty-print", "no-rcs", "no-globalrcs":
			case "interactive":
				interactive = true
			case "rcfile", "init-file", "emulate":
				rcfile = rcfile || t != "--emulate"
				i++
				if i < len(args) && !args[i].single {
					return unsureWord(args, args[i])
				}
			default:
				return unsure(args, "unknown option "+t)
			}
		case strings.HasPrefix(t, "-") || strings.HasPrefix(t, "+"):
			for _, ch := range t[1:] {
				switch {
				case ch == 'c' && t[0] == '-':
					cmode = true
				case ch == 'i' && t[0] == '-':
					interactive = true
				case ch == 'k' && t[0] == '-':
					return unsure(args, "keyword mode (-k) makes NAME=VALUE words anywhere in a command assignments")
				case ch == 'o' || ch == 'O':
					// The option name is the next word.
					i++
					if i < len(args) && !args[i].single {
						return unsureWord(args, args[i])
					}
					if i < len(args) && args[i].text == "keyword" {
						return unsure(args, "keyword mode makes NAME=VALUE words anywhere in a command assignments")
					}
				case ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
				default:
					return unsure(args, "unknown option "+t)
				}
			}
		default:
			break options
		}
	}
	if rcfile && interactive {
		w.readsInput()
	}
	if !cmode {
		// The shell reads a script file or its input. Words appended by
		// xargs could be -c and a script.
		w.readsInput()
		return refuseOpen(args, c)
	}
	if i >= len(args) {
		return w.missing(args, c)
	}
	if !args[i].plain {
		return builtAtRunTime(args[i])
	}
	return w.script(args[i].text, c, args[0].text+" -c")
}

// busybox runs the applet named by its first operand.
func (w *walker) busybox(args []arg, c ctx) error {
	if len(args) > 1 && args[1].plain && strings.HasPrefix(args[1].text, "-") {
		return refuseOpen(args, c)
	}
	return w.wrapped(args, args[1:], c)
}

// eval joins its words with spaces and runs the result as a script.
func (w *walker) eval(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0].plain && rest[0].text == "--" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return nil
	}
	parts := make([]string, len(rest))
	for i, a := range rest {
		if !a.plain {
			return builtAtRunTime(a)
		}
		parts[i] = a.text
	}
	return w.script(strings.Join(parts, " "), c, "eval")
}

func (w *walker) sudo(args []arg, c ctx) error {
	p, err := parseOpts(args, optSpec{
		flags:   "AbBEeHiKklnNPSsVv",
		vals:    "aCcDgpRrTtUu",
		optVals: "h",
		long: []string{"askpass", "background", "bell", "edit", "set-home", "help",
			"login", "remove-timestamp", "reset-timestamp", "list", "no-update",
			"non-interactive", "preserve-groups", "stdin", "shell", "version", "validate"},
		longVals: []string{"close-from", "chdir", "group", "prompt", "chroot", "role",
			"type", "command-timeout", "other-user", "user", "auth-type", "login-class"},
		longOpts: []string{"preserve-env", "host"},
	})
	if err != nil {
		return err
	}
	if p.short {
		return w.missing(args, c)
	}
	// These only edit files, list rights or manage credentials.
	if p.has("e", "edit", "l", "list", "v", "validate", "K", "remove-timestamp", "V", "version", "help") {
		return nil
	}
	if h, ok := p.val("h"); ok && h.val == "" {
		return nil
	}
	rest, err := w.skipAssigns(p.rest, c)
	if err != nil {
		return err
	}
	if p.has("s", "shell", "i", "login") {
		// sudo hands the command to a shell with every character
		// backslash-quoted except $, which the shell still expands.
		for _, a := range rest {
			if strings.Contains(a.text, "$") {
				return unsure(args, "the shell it starts expands "+a.src)
			}
		}
	}
	return w.wrapped(args, rest, c)
}

func (w *walker) env(args []arg, c ctx) error {
	p, err := parseOpts(args, optSpec{
		flags:    "i0v",
		vals:     "uCS",
		long:     []string{"ignore-environment", "null", "debug", "help", "version", "list-signal-handling"},
		longVals: []string{"unset", "chdir", "split-string"},
		longOpts: []string{"block-signal", "default-signal", "ignore-signal"},
	})
	if err != nil {
		return err
	}
	if p.short {
		return w.missing(args, c)
	}
	if p.has("S", "split-string") {
		return unsure(args, "-S splits a string into a command")
	}
	if p.has("help", "version") {
		return nil
	}
	rest := p.rest
	// A lone "-" is the old spelling of -i.
	if len(rest) > 0 && rest[0].plain && rest[0].text == "-" {
		rest = rest[1:]
	}
	rest, err = w.skipAssigns(rest, c)
	if err != nil {
		return err
	}
	return w.wrapped(args, rest, c)
}

// skipAssigns skips the NAME=VALUE words that env and sudo put in the
// environment. A value holding a command substitution is refused for the
// reason walker.value gives: a shell may run it later (PS4, ${X@P}).
func (w *walker) skipAssigns(rest []arg, c ctx) ([]arg, error) {
	for len(rest) > 0 && isAssignWord(rest[0]) {
		if holdsSubst(rest[0].lits) {
			return nil, fmt.Errorf("cannot check %s: the value holds a command substitution that may run later", rest[0].src)
		}
		name, value, _ := strings.Cut(rest[0].text, "=")
		if !rest[0].plain {
			name, _, _ = strings.Cut(rest[0].src, "=")
		}
		if codeVar(name) {
			return nil, fmt.Errorf("cannot check %s: %s makes the command run code of its choosing", rest[0].src, name)
		}
		if commandVar(name) {
			if !rest[0].plain {
				return nil, builtAtRunTime(rest[0])
			}
			if err := w.script(strings.TrimPrefix(value, "|"), c, name); err != nil {
				return nil, err
			}
		}
		// The program's environment: a bash it runs reads the value.
		w.given(name, rest[0].plain && isInteger(arg{plain: true, text: value}))
		rest = rest[1:]
	}
	return rest, nil
}

// runsCode are variables that make a shell or the dynamic loader run code
// the command line does not show: a shell's start-up file (ENV,
// BASH_ENV), its options (SHELLOPTS with xtrace and a PS4), libraries.
// SHELL picks the interpreter of what flock -c, script -c and su -m -c
// run, which corral reads as sh scripts.
var runsCode = map[string]bool{
	"ENV": true, "BASH_ENV": true, "SHELLOPTS": true, "BASHOPTS": true, "PS4": true, "PROMPT_COMMAND": true,
	"LD_PRELOAD": true, "LD_AUDIT": true, "LD_LIBRARY_PATH": true, "GCONV_PATH": true, "SHELL": true,
	// Interpreters' options and start-up code from the environment (a
	// debugger reading its input: PERL5OPT=-d).
	"PERL5OPT": true, "PERL5DB": true, "PYTHONINSPECT": true, "PYTHONSTARTUP": true, "RUBYOPT": true, "NODE_OPTIONS": true,
}

// codeVar reports whether a variable makes a program run code the command
// line does not show: runsCode, and bash's exported functions
// (BASH_FUNC_ls%%='() { rm -rf /; }' makes a bash it runs run that for ls).
func codeVar(name string) bool {
	return runsCode[name] || strings.HasPrefix(name, "BASH_FUNC_") ||
		// git's configuration, and where it finds its programs; tar's
		// options.
		strings.HasPrefix(name, "GIT_CONFIG") || name == "GIT_ALLOW_PROTOCOL" || name == "GIT_EXEC_PATH" || name == "GIT_TEMPLATE_DIR" ||
		name == "TAR_OPTIONS" || name == "MANOPT"
}

// commandVars are variables whose value a program runs as a command:
// set on a command, through env or sudo, or exported, the value is read
// as a script, as an option's is (see optionPrograms).
var commandVars = map[string]bool{
	"GIT_SSH_COMMAND": true, "GIT_SSH": true, "GIT_EXTERNAL_DIFF": true, "GIT_EDITOR": true, "GIT_SEQUENCE_EDITOR": true,
	"GIT_PAGER": true, "GIT_ASKPASS": true, "GIT_PROXY_COMMAND": true, "SSH_ASKPASS": true, "EDITOR": true, "VISUAL": true,
	"PAGER": true, "MANPAGER": true, "SYSTEMD_PAGER": true, "LESSOPEN": true, "LESSCLOSE": true, "RSYNC_RSH": true,
	"RSYNC_CONNECT_PROG": true, "SUDO_ASKPASS": true, "BROWSER": true,
}

func commandVar(name string) bool { return commandVars[name] }

// plainWrapper handles wrappers without options of their own.
func (w *walker) nice(args []arg, c ctx) error {
	// nice also takes its adjustment as -N, --N or -+N, which getopt does
	// not describe.
	i := 1
	for i < len(args) && args[i].plain && isNiceAdjustment(args[i].text) {
		i++
	}
	return w.afterOpts(args, append([]arg{args[0]}, args[i:]...), wrapperSpec{
		spec:  optSpec{vals: "n", long: []string{"help", "version"}, longVals: []string{"adjustment"}},
		noRun: []string{"help", "version"},
	}, c)
}

// isNiceAdjustment reports whether a word is -N, --N or -+N.
func isNiceAdjustment(s string) bool {
	s, ok := strings.CutPrefix(s, "-")
	if !ok {
		return false
	}
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return isDigits(s)
}

// wrapperSpec describes a wrapper whose command follows its options and,
// for some, a fixed number of operands.
type wrapperSpec struct {
	spec optSpec
	// operands come between the options and the command.
	operands int
	// noRun lists options with which the wrapper runs no command.
	noRun []string
}

// wrapperSpecs are the wrappers optWrapper reads.
var wrapperSpecs = map[string]wrapperSpec{
	"doas": {
		spec: optSpec{flags: "Lns", vals: "Cu"},
		// -C checks a configuration and -L clears credentials; neither
		// runs a command.
		noRun: []string{"C", "L"},
	},
	"nohup":   {spec: optSpec{long: []string{"help", "version"}}, noRun: []string{"help", "version"}},
	"builtin": {spec: optSpec{long: []string{"help", "version"}}, noRun: []string{"help", "version"}},
	"ionice": {
		spec: optSpec{flags: "thV", vals: "cnpPu", long: []string{"ignore", "help", "version"},
			longVals: []string{"class", "classdata", "pid", "pgid", "uid"}},
		noRun: []string{"p", "P", "u", "pid", "pgid", "uid", "h", "V", "help", "version"},
	},
	"timeout": {
		spec: optSpec{flags: "fpv", vals: "ks", long: []string{"foreground", "preserve-status", "verbose", "help", "version"},
			longVals: []string{"kill-after", "signal"}},
		operands: 1,
		noRun:    []string{"help", "version"},
	},
	"stdbuf": {
		spec:  optSpec{vals: "ioe", long: []string{"help", "version"}, longVals: []string{"input", "output", "error"}},
		noRun: []string{"help", "version"},
	},
	"setsid": {
		spec:  optSpec{flags: "cfwhV", long: []string{"ctty", "fork", "wait", "help", "version"}},
		noRun: []string{"h", "V", "help", "version"},
	},
	"time": {
		spec: optSpec{flags: "apqvV", vals: "fo", long: []string{"append", "portability", "quiet", "verbose", "help", "version"},
			longVals: []string{"format", "output"}},
		noRun: []string{"V", "help", "version"},
	},
	"command": {
		spec: optSpec{flags: "pvV"},
		// -v and -V only tell what a name is.
		noRun: []string{"v", "V"},
	},
	"exec": {
		spec: optSpec{flags: "cl", vals: "a"},
	},
	"chroot": {
		spec:     optSpec{long: []string{"skip-chdir", "help", "version"}, longVals: []string{"userspec", "groups"}},
		operands: 1,
		noRun:    []string{"help", "version"},
	},
}

func (w *walker) optWrapper(args []arg, c ctx) error {
	return w.afterOpts(args, args, wrapperSpecs[path.Base(args[0].text)], c)
}

// afterOpts finds the command a wrapper runs after the options in
// parseArgs (args, or args with words the wrapper reads its own way
// removed) and its operands.
func (w *walker) afterOpts(args, parseArgs []arg, ws wrapperSpec, c ctx) error {
	p, err := parseOpts(parseArgs, ws.spec)
	if err != nil {
		return err
	}
	if p.short {
		return w.missing(args, c)
	}
	if p.has(ws.noRun...) {
		return nil
	}
	rest := p.rest
	for range ws.operands {
		if len(rest) == 0 {
			return w.missing(args, c)
		}
		if !rest[0].single {
			return unsureWord(args, rest[0])
		}
		rest = rest[1:]
	}
	return w.wrapped(args, rest, c)
}

func (w *walker) xargs(args []arg, c ctx) error {
	p, err := parseOpts(args, optSpec{
		flags:   "0oprtx",
		vals:    "aEILnPsd",
		optVals: "eil",
		long: []string{"null", "interactive", "no-run-if-empty", "verbose", "exit",
			"open-tty", "show-limits", "help", "version"},
		longVals: []string{"arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"},
		longOpts: []string{"eof", "replace", "max-lines"},
	})
	if err != nil {
		return err
	}
	if p.short {
		return w.missing(args, c)
	}
	if p.has("help", "version") {
		return nil
	}
	if len(p.rest) == 0 {
		// xargs runs echo, unless it is itself fed more words.
		return w.missing(args, c)
	}
	inner := slices.Clone(p.rest)
	if r, ok := p.val("I", "i", "replace"); ok {
		// The command runs with its words as written, the replace string
		// in them swapped for input; nothing is appended.
		repl := r.val
		if repl == "" {
			repl = "{}"
		}
		taint(inner, repl)
	} else {
		c.open = true
	}
	return w.run(inner, c.inside(args[0].text))
}

// taint marks the words that hold mark as unknown: xargs -I and find -exec
// put run-time text where mark is.
func taint(args []arg, mark string) {
	for i := range args {
		if strings.Contains(args[i].text, mark) {
			args[i].plain = false
			args[i].filled = true
		}
	}
}

// flock FILE COMMAND... runs the command; flock FILE -c SCRIPT runs the
// script with sh -c.
func (w *walker) flock(args []arg, c ctx) error {
	p, err := parseOpts(args, optSpec{
		flags: "sexnoFuhV",
		vals:  "wE",
		long: []string{"shared", "exclusive", "unlock", "nonblock", "nb", "close",
			"no-fork", "verbose", "fcntl", "help", "version"},
		longVals: []string{"timeout", "wait", "conflict-exit-code"},
	})
	if err != nil {
		return err
	}
	if p.short || len(p.rest) == 0 {
		return w.missing(args, c)
	}
	if p.has("h", "V", "help", "version") {
		return nil
	}
	if !p.rest[0].single {
		return unsureWord(args, p.rest[0])
	}
	rest := p.rest[1:]
	if len(rest) > 0 && rest[0].plain && (rest[0].text == "-c" || rest[0].text == "--command") {
		if err := refuseOpen(args, c); err != nil {
			return err
		}
		if len(rest) != 2 {
			return nil
		}
		if !rest[1].plain {
			return builtAtRunTime(rest[1])
		}
		return w.script(rest[1].text, c, args[0].text+" -c")
	}
	return w.wrapped(args, rest, c)
}

// watch runs its words joined by spaces with sh -c, or as they are with -x.
func (w *walker) watch(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	p, err := parseOpts(args, optSpec{
		flags:   "bcCegprtwxhv",
		vals:    "nqs",
		optVals: "d",
		long: []string{"beep", "color", "no-color", "errexit", "chgexit", "precise",
			"no-rerun", "no-title", "no-wrap", "exec", "help", "version"},
		longVals: []string{"interval", "equexit", "shotsdir"},
		longOpts: []string{"differences"},
	})
	if err != nil {
		return err
	}
	if p.short || len(p.rest) == 0 || p.has("h", "v", "help", "version") {
		return nil
	}
	if p.has("x", "exec") {
		return w.wrapped(args, p.rest, c)
	}
	parts := make([]string, len(p.rest))
	for i, a := range p.rest {
		if !a.plain {
			return builtAtRunTime(a)
		}
		parts[i] = a.text
	}
	return w.script(strings.Join(parts, " "), c, args[0].text)
}

// su and runuser read options anywhere on the line. runuser -u USER runs a
// command; otherwise both run the login shell, with -c SCRIPT if given.
func (w *walker) su(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	runuser := path.Base(args[0].text) == "runuser"
	vals := "cCgGsw"
	longVals := []string{"command", "session-command", "group", "supp-group", "shell", "whitelist-environment"}
	if runuser {
		vals += "u"
		longVals = append(longVals, "user")
	}
	p, err := parseOpts(args, optSpec{
		flags:    "flmpPThV",
		vals:     vals,
		long:     []string{"fast", "login", "preserve-environment", "pty", "no-pty", "help", "version"},
		longVals: longVals,
		permute:  true,
	})
	if err != nil {
		return err
	}
	if p.short || p.has("h", "V", "help", "version") {
		return nil
	}
	script, hasScript := p.val("c", "command", "C", "session-command")
	if _, ok := p.val("u", "user"); ok && runuser {
		if hasScript {
			return unsure(args, "-u does not go with -c")
		}
		return w.wrapped(args, p.rest, c)
	}
	if sh, ok := p.val("s", "shell"); ok && !shells[path.Base(sh.val)] {
		return unsure(args, "the shell "+sh.val+" is not one that can be checked")
	}
	rest := p.rest
	if len(rest) > 0 && rest[0].plain && rest[0].text == "-" {
		rest = rest[1:]
	}
	if len(rest) > 0 {
		// The user name.
		rest = rest[1:]
	}
	if !hasScript {
		if len(rest) > 0 {
			// The words after the user go to the shell, where they can
			// be -c and a script.
			return unsure(args, "the shell it starts is given "+rest[0].src)
		}
		w.readsInput() // the user's login shell, reading its input
		return nil
	}
	if script.word > 0 && !args[script.word].plain {
		return builtAtRunTime(args[script.word])
	}
	return w.script(script.val, c, args[0].text+" -c")
}

// find runs the words after -exec, -execdir, -ok and -okdir up to ";", or up
// to "{} +".
// sg [-] [GROUP [-c] COMMAND] runs COMMAND with /bin/sh -c, or a shell
// when there is none.
func (w *walker) sg(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	rest := args[1:]
	if len(rest) > 0 && rest[0].plain && rest[0].text == "-" {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return w.missing(args, c)
	}
	if !rest[0].single {
		return unsureWord(args, rest[0])
	}
	rest = rest[1:]
	if len(rest) > 0 && rest[0].plain && rest[0].text == "-c" {
		rest = rest[1:]
	}
	switch {
	case len(rest) == 0:
		return w.missing(args, c)
	case len(rest) > 1:
		return unsure(args, "it takes its command as one word")
	case !rest[0].plain:
		return builtAtRunTime(rest[0])
	}
	return w.script(rest[0].text, c, args[0].text)
}

func (w *walker) find(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	for i := 1; i < len(args); i++ {
		if !args[i].plain {
			return unsureWord(args, args[i])
		}
	}
	for i := 1; i < len(args); i++ {
		t := args[i].text
		if t != "-exec" && t != "-execdir" && t != "-ok" && t != "-okdir" {
			continue
		}
		start := i + 1
		end := -1
		for k := start; k < len(args); k++ {
			if args[k].text == ";" || args[k].text == "+" && k > start && args[k-1].text == "{}" {
				end = k
				break
			}
		}
		if end < 0 {
			return unsure(args, t+" is not closed by ; or +")
		}
		inner := slices.Clone(args[start:end])
		taint(inner, "{}")
		if len(inner) > 0 {
			if err := w.run(inner, c.inside(args[0].text+" "+t)); err != nil {
				return err
			}
		}
		i = end
	}
	return nil
}

// trap runs its first operand as a script when a signal arrives.
func (w *walker) trap(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	rest := args[1:]
	for len(rest) > 0 && rest[0].plain && strings.HasPrefix(rest[0].text, "-") && rest[0].text != "-" {
		if rest[0].text == "--" {
			rest = rest[1:]
			break
		}
		for _, ch := range rest[0].text[1:] {
			switch ch {
			case 'l', 'p', 'P':
				// These only print.
				return nil
			default:
				return unsure(args, "unknown option "+rest[0].text)
			}
		}
		rest = rest[1:]
	}
	// One operand, an operand "-", or a leading signal number reset traps.
	if len(rest) < 2 {
		return nil
	}
	action := rest[0]
	if !action.plain {
		return builtAtRunTime(action)
	}
	if action.text == "-" || action.text == "" || isDigits(action.text) {
		return nil
	}
	return w.script(action.text, c, args[0].text)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// alias defines text that replaces a command name, so the text is checked
// as a script; most aliases are complete commands.
func (w *walker) alias(args []arg, c ctx) error {
	if err := refuseOpen(args, c); err != nil {
		return err
	}
	for _, a := range args[1:] {
		if a.plain && (a.text == "-p" || a.text == "--") {
			continue
		}
		if !a.plain {
			if strings.Contains(a.lits, "=") || !a.single {
				return builtAtRunTime(a)
			}
			continue
		}
		name, value, ok := strings.Cut(a.text, "=")
		if !ok {
			continue
		}
		// Where an alias is used, its text runs in place of the name:
		// uses of it are refused rather than resolved.
		w.aliases[name] = true
		if err := w.script(value, c, args[0].text); err != nil {
			return err
		}
	}
	return nil
}
