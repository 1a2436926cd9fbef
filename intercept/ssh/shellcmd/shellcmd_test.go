package shellcmd

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cmd builds a wanted Command; via lists the wrappers around it.
func cmd(argv []string, via ...string) Command {
	if len(via) == 0 {
		via = nil
	}
	return Command{Argv: argv, Text: strings.Join(argv, " "), Via: via}
}

// input is a command that runs what it reads.
func input(argv []string, via ...string) Command {
	c := cmd(argv, via...)
	c.ReadsInput = true
	return c
}

// w lists words.
func w(words ...string) []string { return words }

type testCase struct {
	name   string
	script string
	want   []Command
	// err, when set, is a part of the error message wanted.
	err string
}

var rmrf = w("rm", "-rf", "/")

var tests = []testCase{
	// The examples the package is built for.
	{name: "plain", script: "rm -rf /", want: []Command{cmd(rmrf)}},
	{name: "list", script: "echo hi; rm -rf /", want: []Command{cmd(w("echo", "hi")), cmd(rmrf)}},
	{name: "bash -c", script: "bash -c 'echo hi; rm -rf /'", want: []Command{
		cmd(w("bash", "-c", "echo hi; rm -rf /")),
		cmd(w("echo", "hi"), "bash -c"),
		cmd(rmrf, "bash -c"),
	}},
	{name: "command substitution", script: "echo $(rm -rf /)", want: []Command{
		cmd(w("echo", "$(rm -rf /)")), cmd(rmrf),
	}},
	{name: "backticks", script: "echo `rm -rf /`", want: []Command{
		cmd(w("echo", "`rm -rf /`")), cmd(rmrf),
	}},
	{name: "xargs", script: "ls | xargs rm", want: []Command{
		cmd(w("ls")), cmd(w("xargs", "rm")), cmd(w("rm"), "xargs"),
	}},
	{name: "sudo", script: "sudo -u root rm -rf /", want: []Command{
		cmd(w("sudo", "-u", "root", "rm", "-rf", "/")), cmd(rmrf, "sudo"),
	}},
	{name: "env", script: "env -i PATH=/bin rm -rf /", want: []Command{
		cmd(w("env", "-i", "PATH=/bin", "rm", "-rf", "/")), cmd(rmrf, "env"),
	}},
	{name: "function", script: "f() { rm -rf /; }; f", want: []Command{cmd(rmrf), cmd(w("f"))}},
	{name: "assignment substitution", script: "X=$(rm -rf /) true", want: []Command{cmd(rmrf), cmd(w("true"))}},
	{name: "process substitution", script: "cat <(rm -rf /)", want: []Command{
		cmd(w("cat", "<(rm -rf /)")), cmd(rmrf),
	}},
	{name: "nested sh -c", script: `sh -c "sh -c 'rm -rf /'"`, want: []Command{
		cmd(w("sh", "-c", "sh -c 'rm -rf /'")),
		cmd(w("sh", "-c", "rm -rf /"), "sh -c"),
		cmd(rmrf, "sh -c", "sh -c"),
	}},
	{name: "eval", script: "eval rm -rf /", want: []Command{
		cmd(w("eval", "rm", "-rf", "/")), cmd(rmrf, "eval"),
	}},
	{name: "find -exec", script: `find / -exec rm -rf {} \;`, want: []Command{
		cmd(w("find", "/", "-exec", "rm", "-rf", "{}", ";")), cmd(w("rm", "-rf", "{}"), "find -exec"),
	}},
	{name: "variable program", script: "$CMD -rf /", err: "cannot tell which program runs: $CMD"},
	{name: "bash -c variable", script: `bash -c "$X"`, err: `cannot check a script built at run time: "$X"`},
	{name: "unparsable", script: "echo 'unterminated", err: "cannot parse the command: "},
	{name: "path kept", script: "/bin/rm -rf /", want: []Command{cmd(w("/bin/rm", "-rf", "/"))}},
	{name: "systemctl", script: "systemctl restart api", want: []Command{cmd(w("systemctl", "restart", "api"))}},
	{name: "here-doc", script: "cat <<EOF\n$(rm -rf /)\nEOF", want: []Command{cmd(w("cat")), cmd(rmrf)}},
	{name: "if", script: "if true; then rm -rf /; fi", want: []Command{cmd(w("true")), cmd(rmrf)}},
	{name: "for", script: `for f in *; do rm "$f"; done`, want: []Command{cmd(w("rm", `"$f"`))}},
	{name: "test clause", script: "[[ $(rm -rf /) ]]", want: []Command{cmd(rmrf), cmd(w("[[", "$(rm -rf /)", "]]"))}},
	// sh reads (( as two subshells: the output of rm would be run.
	{name: "arithmetic command", script: "(( $(rm -rf /) ))", err: "arithmetic reads a command's output"},
	{name: "arithmetic command that sh runs", script: "((rm -rf - v1))\ncat <<< x", err: "arithmetic reads"},
	{name: "timeout", script: "timeout 5 rm x", want: []Command{
		cmd(w("timeout", "5", "rm", "x")), cmd(w("rm", "x"), "timeout"),
	}},

	// Rule 1: the whole syntax tree is walked.
	{name: "pipeline", script: "a | b |& c", want: []Command{cmd(w("a")), cmd(w("b")), cmd(w("c"))}},
	{name: "and or", script: "a && b || c", want: []Command{cmd(w("a")), cmd(w("b")), cmd(w("c"))}},
	{name: "background and newline", script: "a &\nb", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "subshell", script: "(a; (b))", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "block", script: "{ a; { b; }; }", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "elif else", script: "if a; then b; elif c; then d; else e; fi", want: []Command{
		cmd(w("a")), cmd(w("b")), cmd(w("c")), cmd(w("d")), cmd(w("e")),
	}},
	{name: "while", script: "while a; do b; done", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "until", script: "until a; do b; done", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "for words", script: "for i in $(a) x; do b $i; done", want: []Command{cmd(w("a")), cmd(w("b", "$i"))}},
	{name: "for arithmetic", script: "for ((i=$(a); i<3; i++)); do b; done", err: "arithmetic reads a command's output"},
	{name: "for arithmetic over literals", script: "for ((i=0; i<3; i++)); do b $((i*2)); done", want: []Command{cmd(w("b", "$((i*2))"))}},
	{name: "select", script: "select x in $(a); do b; done", want: []Command{cmd(w("a")), cmd(w("b")), cmd(w("select", "x", "in", "$(a)"))}},
	{name: "case", script: "case $(a) in $(b)) c;; x|y) d;; esac", want: []Command{
		cmd(w("a")), cmd(w("b")), cmd(w("c")), cmd(w("d")),
	}},
	{name: "function keyword", script: "function g { a; }", want: []Command{cmd(w("a"))}},
	{name: "function subshell body", script: "g() ( a )", want: []Command{cmd(w("a"))}},
	{name: "function declared and never called", script: "g() { rm -rf /; }", want: []Command{cmd(rmrf)}},
	{name: "redirection target", script: "echo hi > $(a)", want: []Command{cmd(w("echo", "hi")), cmd(w("a"))}},
	{name: "redirection before command", script: "< $(a) b", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "here-string", script: "cat <<< $(a)", want: []Command{cmd(w("cat")), cmd(w("a"))}},
	{name: "quoted here-doc is text", script: "cat <<'EOF'\n$(rm -rf /)\nEOF", want: []Command{cmd(w("cat"))}},
	{name: "here-doc with dash", script: "cat <<-EOF\n\t`a`\n\tEOF", want: []Command{cmd(w("cat")), cmd(w("a"))}},
	{name: "parameter default", script: "echo ${X:-$(a)}", want: []Command{cmd(w("echo", "${X:-$(a)}")), cmd(w("a"))}},
	{name: "parameter replace", script: "echo ${X/$(a)/$(b)}", want: []Command{
		cmd(w("echo", "${X/$(a)/$(b)}")), cmd(w("a")), cmd(w("b")),
	}},
	{name: "parameter slice and index", script: "echo ${X:$(a):1} ${Y[$(b)]}", err: "arithmetic reads a command's output"},
	{name: "arithmetic expansion", script: "echo $(( $(a) + 1 ))", err: "arithmetic reads a command's output"},
	{name: "substitution in double quotes", script: `echo "x $(a "$(b)") y"`, want: []Command{
		cmd(w("echo", `"x $(a "$(b)") y"`)), cmd(w("a", `"$(b)"`)), cmd(w("b")),
	}},
	{name: "output process substitution", script: "tee >(a) >/dev/null", want: []Command{
		cmd(w("tee", ">(a)")), cmd(w("a")),
	}},
	// sh reads bash's keywords as programs: both readings are checked.
	{name: "coproc", script: "coproc a x", want: []Command{cmd(w("a", "x")), cmd(w("coproc", "a", "x"))}},
	{name: "named coproc", script: "coproc N { a; }", want: []Command{cmd(w("a")), cmd(w("coproc", "N", "{", "a"))}},
	{name: "time keyword", script: "time -p a", want: []Command{cmd(w("a")), cmd(w("time", "-p", "a")), cmd(w("a"), "time")}},
	{name: "negation", script: "! a", want: []Command{cmd(w("a"))}},
	{name: "export", script: "export X=$(a) Y=2", want: []Command{
		cmd(w("export", "X=$(a)", "Y=2")), cmd(w("a")),
	}},
	{name: "local", script: "f() { local x=$(a); }", want: []Command{cmd(w("local", "x=$(a)")), cmd(w("a"))}},
	{name: "declare", script: "declare -r X='v 1' Y", want: []Command{cmd(w("declare", "-r", "X=v 1", "Y"))}},
	{name: "readonly array", script: "readonly A=(1 $(a))", want: []Command{cmd(w("readonly", "A=(1 $(a))")), cmd(w("a"))}},
	{name: "let", script: "let x=1+$(a)", err: "arithmetic reads a command's output"},
	{name: "test clause operands", script: "[[ -f $(a) && x == $(b) ]]", want: []Command{cmd(w("a")), cmd(w("b")),
		cmd(w("[[", "-f", "$(a)")), cmd(w("x", "==", "$(b)", "]]"))}}, // sh has no [[ keyword
	{name: "array assignment", script: "A=(1 $(a)) B[$(b)]=2", err: "arithmetic reads a command's output"},
	{name: "array assignment of values", script: "A=(1 $(a)) B[2]=$(b)", want: []Command{cmd(w("a")), cmd(w("b"))}},
	{name: "comments", script: "a # ; rm -rf /", want: []Command{cmd(w("a"))}},
	{name: "empty", script: "", want: nil},
	{name: "blank", script: " \n\t# only a comment\n", want: nil},

	// Source order: a command comes before those in its own words.
	{name: "order", script: "X=$(a) b $(c) > $(d); e", want: []Command{
		cmd(w("a")), cmd(w("b", "$(c)")), cmd(w("c")), cmd(w("d")), cmd(w("e")),
	}},

	// Rule 2: parse errors.
	{name: "unclosed if", script: "if true; then a", err: "cannot parse the command: "},
	{name: "stray paren", script: "a )", err: "cannot parse the command: "},
	{name: "unclosed substitution", script: "echo $(a", err: "cannot parse the command: "},

	// Rule 3: program names and quote removal.
	{name: "quote removal", script: `'rm' "-rf" /`, want: []Command{cmd(rmrf)}},
	{name: "quotes inside the name", script: `"r"m x`, want: []Command{cmd(w("rm", "x"))}},
	{name: "backslashes", script: `r\m a\ b "c\"d\$e\n"`, want: []Command{cmd(w("rm", "a b", `c"d$e\n`))}},
	{name: "line continuation", script: "rm \\\n -rf /", want: []Command{cmd(rmrf)}},
	{name: "ansi-c quoting", script: `$'rm' $'a\tb' $'\x41\101'`, err: "cannot tell which program runs: $'rm'"},
	{name: "ansi-c quoting hiding a command from bash", script: `echo $'\' ; touch /tmp/x ; #'`, want: []Command{
		cmd(w("echo", "' ; touch /tmp/x ; #")), cmd(w("echo", "$\\")), cmd(w("touch", "/tmp/x"))}},
	{name: "ansi-c quoting hidden in sh -c", script: `sh -c "echo \$'\\' ; touch /tmp/x ; #'"`, want: []Command{
		cmd(w("sh", "-c", `echo $'\' ; touch /tmp/x ; #'`)), cmd(w("echo", "' ; touch /tmp/x ; #"), "sh -c"),
		cmd(w("echo", "$\\"), "sh -c"), cmd(w("touch", "/tmp/x"), "sh -c")}},
	{name: "source reads a file", script: ". ./env.sh; source x", want: []Command{input(w(".", "./env.sh")), input(w("source", "x"))}},
	{name: "ansi-c unicode is unknown", script: `$'\u0072m' x`, err: `cannot tell which program runs: $'\u0072m'`},
	{name: "locale string is unknown", script: `$"rm" x`, err: `cannot check $"...": bash replaces it`},
	{name: "locale string as an argument", script: `echo $"hi"`, err: `cannot check $"..."`},
	{name: "arguments that expand keep their text", script: `ls $HOME "$HOME/x" ~ *.go a{b,c}`, want: []Command{
		cmd(w("ls", "$HOME", `"$HOME/x"`, "~", "*.go", "a{b,c}")),
	}},
	{name: "substitution as name", script: "$(echo rm) -rf /", err: "cannot tell which program runs: $(echo rm)"},
	{name: "braced variable in name", script: "${X}rm x", err: "cannot tell which program runs: ${X}rm"},
	{name: "quoted variable as name", script: `"$CMD" x`, err: `cannot tell which program runs: "$CMD"`},
	{name: "glob as name", script: "* x", err: "cannot tell which program runs: *"},
	{name: "question glob in name", script: "r? x", err: "cannot tell which program runs: r?"},
	{name: "bracket glob in name", script: "[r]m x", err: "cannot tell which program runs: [r]m"},
	{name: "extglob in name", script: "@(rm) x", err: "cannot tell which program runs: @(rm)"},
	{name: "tilde in name", script: "~/bin/tool", err: "cannot tell which program runs: ~/bin/tool"},
	{name: "brace expansion in name", script: "{rm,-rf,/}", err: "cannot tell which program runs: {rm,-rf,/}"},
	{name: "quoted dollar in name", script: `'$X' a`, err: "cannot tell which program runs: '$X'"},
	{name: "test bracket is a name", script: "[ -f x ]", want: []Command{cmd(w("[", "-f", "x", "]"))}},
	{name: "name in a substitution", script: "echo $($X)", err: "cannot tell which program runs: $X"},

	// Rule 4: interpreters.
	{name: "combined -ec", script: "bash -ec 'a'", want: []Command{cmd(w("bash", "-ec", "a")), cmd(w("a"), "bash -c")}},
	{name: "combined -lc", script: "bash -lc a", want: []Command{cmd(w("bash", "-lc", "a")), cmd(w("a"), "bash -c")}},
	{name: "combined -xc", script: "sh -xc a", want: []Command{cmd(w("sh", "-xc", "a")), cmd(w("a"), "sh -c")}},
	{name: "options before -c", script: "bash -e -c a", want: []Command{cmd(w("bash", "-e", "-c", "a")), cmd(w("a"), "bash -c")}},
	{name: "options after -c", script: "bash -c -e a", want: []Command{cmd(w("bash", "-c", "-e", "a")), cmd(w("a"), "bash -c")}},
	{name: "long option before -c", script: "bash --norc --noprofile -c a", want: []Command{
		cmd(w("bash", "--norc", "--noprofile", "-c", "a")), cmd(w("a"), "bash -c"),
	}},
	{name: "-o before -c", script: "bash -o pipefail -c 'a | b'", want: []Command{
		cmd(w("bash", "-o", "pipefail", "-c", "a | b")), cmd(w("a"), "bash -c"), cmd(w("b"), "bash -c"),
	}},
	{name: "-eo before -c", script: "bash -eo pipefail -c a", want: []Command{
		cmd(w("bash", "-eo", "pipefail", "-c", "a")), cmd(w("a"), "bash -c"),
	}},
	{name: "rcfile before -c", script: "bash --rcfile /x -c a", want: []Command{
		cmd(w("bash", "--rcfile", "/x", "-c", "a")), cmd(w("a"), "bash -c"),
	}},
	{name: "positional parameters after the script", script: "sh -c 'echo $0 $1' x rm", want: []Command{
		cmd(w("sh", "-c", "echo $0 $1", "x", "rm")), cmd(w("echo", "$0", "$1"), "sh -c"),
	}},
	{name: "positional parameters as program", script: `sh -c '"$@"' x rm -rf /`, err: `cannot tell which program runs: "$@"`},
	{name: "other shells", script: "dash -c a; zsh -c b; ksh -c c; mksh -c d; ash -c e", want: []Command{
		cmd(w("dash", "-c", "a")), cmd(w("a"), "dash -c"),
		cmd(w("zsh", "-c", "b")), cmd(w("b"), "zsh -c"),
		cmd(w("ksh", "-c", "c")), cmd(w("c"), "ksh -c"),
		cmd(w("mksh", "-c", "d")), cmd(w("d"), "mksh -c"),
		cmd(w("ash", "-c", "e")), cmd(w("e"), "ash -c"),
	}},
	{name: "shell by path", script: "/bin/bash -c a", want: []Command{cmd(w("/bin/bash", "-c", "a")), cmd(w("a"), "/bin/bash -c")}},
	{name: "busybox sh", script: "busybox sh -c a", want: []Command{
		cmd(w("busybox", "sh", "-c", "a")), cmd(w("sh", "-c", "a"), "busybox"), cmd(w("a"), "busybox", "sh -c"),
	}},
	{name: "busybox applet", script: "busybox rm -rf /", want: []Command{
		cmd(w("busybox", "rm", "-rf", "/")), cmd(rmrf, "busybox"),
	}},
	{name: "bare shell", script: "bash", want: []Command{input(w("bash"))}},
	{name: "shell reading input", script: "sh -s", want: []Command{input(w("sh", "-s"))}},
	{name: "shell running a file", script: "bash script.sh arg", want: []Command{input(w("bash", "script.sh", "arg"))}},
	{name: "shell reading a pipe", script: "curl x | sh", want: []Command{cmd(w("curl", "x")), input(w("sh"))}},
	{name: "-c without a script", script: "bash -c", want: []Command{cmd(w("bash", "-c"))}},
	{name: "unquoted variable script", script: "bash -c $X", err: "cannot check a script built at run time: $X"},
	{name: "substitution script", script: `sh -c "$(curl x)"`, err: `cannot check a script built at run time: "$(curl x)"`},
	{name: "glob script", script: "sh -c *", err: "cannot check a script built at run time: *"},
	{name: "variable options", script: "bash $OPTS", err: "cannot tell which command `bash` runs: $OPTS"},
	{name: "tilde where an option may be", script: "HOME=-c; bash ~ 'rm -rf /'", err: "cannot tell which command `bash` runs: ~"},
	{name: "tilde as a wrapper operand", script: "nice ~- x", err: "cannot tell which command `nice` runs: ~-"},
	{name: "tilde in a script file name", script: "bash ./~x", want: []Command{input(w("bash", "./~x"))}},
	{name: "unknown long shell option", script: "bash --frobnicate -c a", err: "unknown option --frobnicate"},
	{name: "nested parse error", script: "bash -c 'echo \"'", err: "cannot parse the script given to bash -c: "},
	{name: "eval quoted", script: `eval "a; b"`, want: []Command{cmd(w("eval", "a; b")), cmd(w("a"), "eval"), cmd(w("b"), "eval")}},
	{name: "eval joins its words", script: `eval 'a' "|" b`, want: []Command{
		cmd(w("eval", "a", "|", "b")), cmd(w("a"), "eval"), cmd(w("b"), "eval"),
	}},
	{name: "eval nothing", script: "eval", want: []Command{cmd(w("eval"))}},
	{name: "eval variable", script: `eval "$X"`, err: `cannot check a script built at run time: "$X"`},
	{name: "eval glob", script: "eval *", err: "cannot check a script built at run time: *"},
	{name: "depth 8 is allowed", script: "eval eval eval eval eval eval eval eval a", want: chainWant("eval", 8, "a")},
	{name: "depth 9 is refused", script: "eval eval eval eval eval eval eval eval eval a", err: "nested more than 8 deep"},
	{name: "deep sh -c", script: deepShell(9), err: "nested more than 8 deep"},
	// Big5 reads the last byte of 严 (E4 B8 A5) and the backslash as one
	// character: the quote closes, and touch and rm run.
	// Interpreters given no program read it from their input.
	{name: "perl from input", script: "perl", want: []Command{input(w("perl"))}},
	{name: "python3 from input", script: "python3 -u -W ignore", want: []Command{input(w("python3", "-u", "-W", "ignore"))}},
	{name: "python3.11 dash", script: "python3.11 - arg", want: []Command{input(w("python3.11", "-", "arg"))}},
	{name: "node with a program", script: "node -e 1", want: []Command{cmd(w("node", "-e", "1"))}},
	{name: "perl with a program", script: "perl -ne print f", want: []Command{cmd(w("perl", "-ne", "print", "f"))}},
	{name: "python module", script: "python3 -mhttp.server", want: []Command{cmd(w("python3", "-mhttp.server"))}},
	{name: "script file", script: "ruby -I lib job.rb", want: []Command{cmd(w("ruby", "-I", "lib", "job.rb"))}},
	{name: "python3 /dev/stdin", script: "python3 /dev/stdin", want: []Command{input(w("python3", "/dev/stdin"))}},
	{name: "python3 -i -c", script: "python3 -i -c pass", want: []Command{input(w("python3", "-i", "-c", "pass"))}},
	{name: "python3 -m code", script: "python3 -m code", want: []Command{input(w("python3", "-m", "code"))}},
	{name: "python3 -m http.server", script: "python3 -m http.server 8000", want: []Command{cmd(w("python3", "-m", "http.server", "8000"))}},
	{name: "awk -f -", script: "awk -f - data", want: []Command{input(w("awk", "-f", "-", "data"))}},
	{name: "awk program", script: "awk '{print}' data", want: []Command{cmd(w("awk", "{print}", "data"))}},
	{name: "make -f -", script: "make -f -", want: []Command{input(w("make", "-f", "-"))}},
	{name: "make", script: "make -C src all", want: []Command{cmd(w("make", "-C", "src", "all"))}},
	{name: "sqlite3 reads commands", script: "sqlite3 app.db", want: []Command{input(w("sqlite3", "app.db"))}},
	{name: "sqlite3 with SQL", script: "sqlite3 app.db 'SELECT 1'", want: []Command{cmd(w("sqlite3", "app.db", "SELECT 1"))}},
	{name: "gdb reads commands", script: "gdb -q -nx", want: []Command{input(w("gdb", "-q", "-nx"))}},
	{name: "gdb batch", script: "gdb -batch -ex bt prog core", want: []Command{cmd(w("gdb", "-batch", "-ex", "bt", "prog", "core"))}},
	{name: "vim -es", script: "vim -es", want: []Command{input(w("vim", "-es"))}},
	{name: "psql reads commands", script: "psql -h db orders", want: []Command{input(w("psql", "-h", "db", "orders"))}},
	{name: "psql -c", script: "psql orders -c 'SELECT 1'", want: []Command{cmd(w("psql", "orders", "-c", "SELECT 1"))}},
	{name: "mysql --execute=", script: "mysql --execute='SELECT 1' orders", want: []Command{cmd(w("mysql", "--execute=SELECT 1", "orders"))}},
	{name: "python3 -EW ignore", script: "python3 -EW ignore", want: []Command{input(w("python3", "-EW", "ignore"))}},
	{name: "python3 -Im code", script: "python3 -Im code", want: []Command{input(w("python3", "-Im", "code"))}},
	{name: "python3 -ic", script: "python3 -ic pass", want: []Command{input(w("python3", "-ic", "pass"))}},
	{name: "perl -de 0", script: "perl -de 0", want: []Command{input(w("perl", "-de", "0"))}},
	{name: "perl -wI dir", script: "perl -wI /tmp", want: []Command{input(w("perl", "-wI", "/tmp"))}},
	{name: "python3 unknown option's value", script: "python3 --check-hash-based-pycs default", want: []Command{input(w("python3", "--check-hash-based-pycs", "default"))}},
	{name: "node --title", script: "node --title foo", want: []Command{input(w("node", "--title", "foo"))}},
	{name: "sed options after operands", script: "sed -n f -f -", want: []Command{input(w("sed", "-n", "f", "-f", "-"))}},
	{name: "gdb --args", script: "gdb --args ./prog -batch", want: []Command{input(w("gdb", "--args", "./prog", "-batch"))}},
	{name: "gdb -x", script: "gdb -x cmds.gdb ./a.out", want: []Command{input(w("gdb", "-x", "cmds.gdb", "./a.out"))}},
	{name: "sqlite3 -init", script: "sqlite3 -init /dev/null app.db", want: []Command{input(w("sqlite3", "-init", "/dev/null", "app.db"))}},
	{name: "dc -", script: "dc -e 1 -", want: []Command{input(w("dc", "-e", "1", "-"))}},
	{name: "python3 thread-self", script: "python3 /proc/thread-self/fd/0", want: []Command{input(w("python3", "/proc/thread-self/fd/0"))}},
	{name: "python3 dot path", script: "python3 /dev/./stdin", want: []Command{input(w("python3", "/dev/./stdin"))}},
	{name: "python3 glob", script: "python3 /dev/stdi?", want: []Command{input(w("python3", "/dev/stdi?"))}},
	{name: "vim file", script: "vim f", want: []Command{input(w("vim", "f"))}},
	{name: "vim.basic", script: "vim.basic -Nes", want: []Command{input(w("vim.basic", "-Nes"))}},
	{name: "gawk versioned", script: "gawk-5.1.0 -f /dev/stdin", want: []Command{input(w("gawk-5.1.0", "-f", "/dev/stdin"))}},
	{name: "node -v", script: "node -v", want: []Command{cmd(w("node", "-v"))}},
	{name: "python3 --version", script: "python3 --version", want: []Command{cmd(w("python3", "--version"))}},
	{name: "perl -v", script: "perl -v", want: []Command{cmd(w("perl", "-v"))}},
	{name: "php -m", script: "php -m", want: []Command{cmd(w("php", "-m"))}},
	{name: "psql -Atc", script: "psql -Atc 'SELECT 1' orders", want: []Command{cmd(w("psql", "-Atc", "SELECT 1", "orders"))}},
	{name: "psql -Xf", script: "psql -Xf x.sql orders", want: []Command{cmd(w("psql", "-Xf", "x.sql", "orders"))}},
	{name: "mysql -BNe", script: "mysql -BNe 'SELECT 1'", want: []Command{cmd(w("mysql", "-BNe", "SELECT 1"))}},
	{name: "perl -l script", script: "perl -l x.pl", want: []Command{cmd(w("perl", "-l", "x.pl"))}},
	{name: "ruby -W script", script: "ruby -W x.rb", want: []Command{cmd(w("ruby", "-W", "x.rb"))}},
	{name: "gdb -batch-silent", script: "gdb -batch-silent -ex bt ./a.out core", want: []Command{cmd(w("gdb", "-batch-silent", "-ex", "bt", "./a.out", "core"))}},
	{name: "python3 -m pip", script: "python3 -m pip install x", want: []Command{cmd(w("python3", "-m", "pip", "install", "x"))}},
	{name: "python3 script -i", script: "python3 job.py -i in.txt", want: []Command{cmd(w("python3", "job.py", "-i", "in.txt"))}},
	{name: "make abbreviated --file", script: "make --fi=-", want: []Command{input(w("make", "--fi=-"))}},
	{name: "psql -- db", script: "psql -- orders", want: []Command{input(w("psql", "--", "orders"))}},
	{name: "python3 -- script", script: "python3 -- job.py", want: []Command{cmd(w("python3", "--", "job.py"))}},
	{name: "sqlite3 -- db", script: "sqlite3 -- app.db", want: []Command{input(w("sqlite3", "--", "app.db"))}},
	{name: "python3 via /proc/self/root", script: "python3 /proc/self/root/dev/stdin", want: []Command{input(w("python3", "/proc/self/root/dev/stdin"))}},
	{name: "python3 relative dev", script: "python3 ../../dev/stdin", want: []Command{input(w("python3", "../../dev/stdin"))}},
	{name: "python3 stdin in cwd", script: "python3 stdin", want: []Command{input(w("python3", "stdin"))}},
	{name: "python3 -m runpy code", script: "python3 -m runpy code", want: []Command{input(w("python3", "-m", "runpy", "code"))}},
	{name: "python3 -m cProfile -m code", script: "python3 -m cProfile -m code", want: []Command{input(w("python3", "-m", "cProfile", "-m", "code"))}},
	{name: "python3 -m cProfile script", script: "python3 -m cProfile job.py", want: []Command{cmd(w("python3", "-m", "cProfile", "job.py"))}},
	{name: "tclsh -a", script: "tclsh -a b c", want: []Command{input(w("tclsh", "-a", "b", "c"))}},
	{name: "sqlite3 --cmd", script: "sqlite3 --cmd x app.db", want: []Command{input(w("sqlite3", "--cmd", "x", "app.db"))}},
	{name: "sqlite3 -lookaside", script: "sqlite3 -lookaside 100 10 app.db", want: []Command{input(w("sqlite3", "-lookaside", "100", "10", "app.db"))}},
	{name: "node --redirect-warnings", script: "node --redirect-warnings w --", want: []Command{input(w("node", "--redirect-warnings", "w", "--"))}},
	{name: "editor -es", script: "editor -es", want: []Command{input(w("editor", "-es"))}},
	{name: "awk 1", script: "awk 1 data", want: []Command{cmd(w("awk", "1", "data"))}},
	{name: "make -C fd", script: "make -C /proc/self/fd -f 0", want: []Command{input(w("make", "-C", "/proc/self/fd", "-f", "0"))}},
	{name: "the shell under another name", script: "/proc/self/exe -c 'rm -rf v'", err: "cannot tell which program"},
	{name: "awk over /dev/null", script: "awk -f prog.awk /dev/null", want: []Command{cmd(w("awk", "-f", "prog.awk", "/dev/null"))}},
	{name: "perl -CE", script: "perl -CE", want: []Command{input(w("perl", "-CE"))}},
	{name: "perl -i.e", script: "perl -i.e", want: []Command{input(w("perl", "-i.e"))}},
	{name: "mysql -psecret", script: "mysql -u root -psecret mydb", want: []Command{input(w("mysql", "-u", "root", "-psecret", "mydb"))}},
	{name: "make -j --file=-", script: "make -j --file=-", want: []Command{input(w("make", "-j", "--file=-"))}},
	{name: "node --env-file=/dev/stdin", script: "node --env-file=/dev/stdin app.js", want: []Command{input(w("node", "--env-file=/dev/stdin", "app.js"))}},
	{name: "node -r/dev/stdin", script: "node -r/dev/stdin app.js", want: []Command{input(w("node", "-r/dev/stdin", "app.js"))}},
	{name: "crontab -", script: "crontab -", want: []Command{input(w("crontab", "-"))}},
	{name: "crontab", script: "crontab", want: []Command{input(w("crontab"))}},
	{name: "crontab -l", script: "crontab -l", want: []Command{cmd(w("crontab", "-l"))}},
	{name: "parallel", script: "parallel", want: []Command{input(w("parallel"))}},
	{name: "arm-none-eabi-gdb", script: "arm-none-eabi-gdb ./a.out", want: []Command{input(w("arm-none-eabi-gdb", "./a.out"))}},
	{name: "awk over /proc", script: "awk /MemTotal/ /proc/meminfo", want: []Command{cmd(w("awk", "/MemTotal/", "/proc/meminfo"))}},
	{name: "python3 --output /dev/stdout", script: "python3 x.py --output /dev/stdout", want: []Command{cmd(w("python3", "x.py", "--output", "/dev/stdout"))}},
	{name: "node --enable-source-maps", script: "node --enable-source-maps app.js", want: []Command{cmd(w("node", "--enable-source-maps", "app.js"))}},
	{name: "node --trace-warnings", script: "node --trace-warnings app.js", want: []Command{cmd(w("node", "--trace-warnings", "app.js"))}},
	{name: "python3 dev/seed.py", script: "python3 dev/seed.py", want: []Command{cmd(w("python3", "dev/seed.py"))}},
	{name: "coverage with digits", script: "python3 -m coverage run -m pytest -n 4", want: []Command{cmd(w("python3", "-m", "coverage", "run", "-m", "pytest", "-n", "4"))}},
	{name: "cProfile -o", script: "python3 -m cProfile -o o.prof manage.py migrate 0001", want: []Command{cmd(w("python3", "-m", "cProfile", "-o", "o.prof", "manage.py", "migrate", "0001"))}},
	{name: "python3-config", script: "python3-config --includes", want: []Command{cmd(w("python3-config", "--includes"))}},
	{name: "node-gyp", script: "node-gyp rebuild", want: []Command{cmd(w("node-gyp", "rebuild"))}},
	{name: "ipython script", script: "ipython script.py", want: []Command{cmd(w("ipython", "script.py"))}},
	{name: "R CMD check", script: "R CMD check pkg", want: []Command{cmd(w("R", "CMD", "check", "pkg"))}},
	{name: "duckdb -c", script: "duckdb -c x", want: []Command{cmd(w("duckdb", "-c", "x"))}},
	{name: "ruby --yjit", script: "ruby --yjit app.rb", want: []Command{cmd(w("ruby", "--yjit", "app.rb"))}},
	{name: "php -l", script: "php -l file.php", want: []Command{cmd(w("php", "-l", "file.php"))}},
	{name: "python3 -c x -i", script: "python3 -c x -i", want: []Command{cmd(w("python3", "-c", "x", "-i"))}},
	{name: "python3 -m pip -i", script: "python3 -m pip install x -i url", want: []Command{cmd(w("python3", "-m", "pip", "install", "x", "-i", "url"))}},
	{name: "make -j 4", script: "make -j 4 all", want: []Command{cmd(w("make", "-j", "4", "all"))}},
	{name: "sqlite3 SQL", script: "sqlite3 db 0", want: []Command{cmd(w("sqlite3", "db", "0"))}},
	{name: "exe in /proc/self", script: "cd /proc/self && ./exe -c x", err: "cannot tell which program"},
	{name: "node --inspect", script: "node --inspect app.js", want: []Command{cmd(w("node", "--inspect", "app.js"))}},
	{name: "node --watch", script: "node --watch app.js", want: []Command{cmd(w("node", "--watch", "app.js"))}},
	{name: "node --test", script: "node --test", want: []Command{cmd(w("node", "--test"))}},
	{name: "parallel -j 4", script: "parallel -j 4 gzip ::: a b", want: []Command{cmd(w("parallel", "-j", "4", "gzip", ":::", "a", "b"))}},
	{name: "parallel -S host", script: "parallel -S host", want: []Command{input(w("parallel", "-S", "host"))}},
	{name: "parallel :::", script: "parallel ::: x", want: []Command{input(w("parallel", ":::", "x"))}},
	{name: "perl -d:NYTProf", script: "perl -d:NYTProf x.pl", want: []Command{cmd(w("perl", "-d:NYTProf", "x.pl"))}},
	{name: "perl -ld", script: "perl -ld x.pl", want: []Command{input(w("perl", "-ld", "x.pl"))}},
	{name: "ruby -wr stdin", script: "ruby -wr/dev/stdin x.rb", want: []Command{input(w("ruby", "-wr/dev/stdin", "x.rb"))}},
	{name: "node -r relative", script: "node -r ../../dev/stdin app.js", want: []Command{input(w("node", "-r", "../../dev/stdin", "app.js"))}},
	{name: "node --import file URL", script: "node --import=file:///dev/stdin app.js", want: []Command{input(w("node", "--import=file:///dev/stdin", "app.js"))}},
	{name: "php prepend", script: "php -d auto_prepend_file=PHP://STDIN x.php", want: []Command{input(w("php", "-d", "auto_prepend_file=PHP://STDIN", "x.php"))}},
	{name: "gdb -batch -x", script: "gdb -batch -x ../../dev/stdin ./a.out", want: []Command{input(w("gdb", "-batch", "-x", "../../dev/stdin", "./a.out"))}},
	{name: "sqlite3 -init relative", script: "sqlite3 -init ../../dev/stdin db x", want: []Command{input(w("sqlite3", "-init", "../../dev/stdin", "db", "x"))}},
	{name: "m4 defs -", script: "m4 defs.m4 -", want: []Command{input(w("m4", "defs.m4", "-"))}},
	{name: "m4 files", script: "m4 defs.m4 main.m4", want: []Command{cmd(w("m4", "defs.m4", "main.m4"))}},
	{name: "R script", script: "R --no-save x", want: []Command{input(w("R", "--no-save", "x"))}},
	{name: "R CMD", script: "R CMD check pkg", want: []Command{cmd(w("R", "CMD", "check", "pkg"))}},
	{name: "ipython -i", script: "ipython -i x.py", want: []Command{input(w("ipython", "-i", "x.py"))}},
	{name: "jshell file", script: "jshell x.jsh", want: []Command{input(w("jshell", "x.jsh"))}},
	{name: "node inspect", script: "node inspect app.js", want: []Command{input(w("node", "inspect", "app.js"))}},
	{name: "psql abbreviated", script: "psql --comm x", want: []Command{cmd(w("psql", "--comm", "x"))}},
	{name: "python3 -m _pyrepl", script: "python3 -m _pyrepl", want: []Command{input(w("python3", "-m", "_pyrepl"))}},
	{name: "trace --module", script: "python3 -m trace --trace --module code", want: []Command{input(w("python3", "-m", "trace", "--trace", "--module", "code"))}},
	{name: "a descriptor run by a relative path", script: "cd /dev && fd/3 -c x", err: "cannot tell which program"},
	{name: "awk -f built at run time", script: "awk -f \"$F\" f", want: []Command{func() Command { c := input(w("awk", "-f", "\"$F\"", "f")); c.Known = 0; return c }()}},
	{name: "ed reads commands", script: "ed notes.txt", want: []Command{input(w("ed", "notes.txt"))}},
	{name: "double-byte backslash", script: "echo \"\u4e25\\\"; touch ~/approved; rm -rf ~/victim; #\"", err: "double-byte locale"},
	{name: "double-byte backslash in sh -c", script: "bash -c 'echo \"\u4e25\\\"; rm -rf x; #\"'", err: "double-byte locale"},
	{name: "double-byte pipe", script: "echo \u00e9|rm x", err: "double-byte locale"},
	{name: "non-ASCII in single quotes", script: "grep -E '\u00e9|\u00e8' f", want: []Command{cmd(w("grep", "-E", "\u00e9|\u00e8", "f"))}},
	{name: "non-ASCII in double quotes", script: "printf \"\u65e5\u672c|\u8a9e\\n\"", want: []Command{cmd(w("printf", "\u65e5\u672c|\u8a9e\\n"))}},
	{name: "double-byte backtick in double quotes", script: "echo \"\u4e25`x`\"", err: "double-byte locale"},
	{name: "double-byte brace outside quotes", script: "echo ${x:-\u4e25}'; rm -rf v; '", err: "double-byte locale"},
	{name: "non-ASCII text", script: "echo \"caf\u00e9 \u4e25\" | wc -c", want: []Command{cmd(w("echo", "caf\u00e9 \u4e25")), cmd(w("wc", "-c"))}},

	// Rule 5: wrappers.
	{name: "sudo options", script: "sudo -u root -E rm -rf /", want: []Command{
		cmd(w("sudo", "-u", "root", "-E", "rm", "-rf", "/")), cmd(rmrf, "sudo"),
	}},
	{name: "sudo long options", script: "sudo --user=root --preserve-env=PATH -- rm x", want: []Command{
		cmd(w("sudo", "--user=root", "--preserve-env=PATH", "--", "rm", "x")), cmd(w("rm", "x"), "sudo"),
	}},
	{name: "sudo attached value", script: "sudo -uroot rm x", want: []Command{
		cmd(w("sudo", "-uroot", "rm", "x")), cmd(w("rm", "x"), "sudo"),
	}},
	{name: "sudo quoted variable value", script: `sudo -u "$U" rm x`, want: []Command{
		cmd(w("sudo", "-u", `"$U"`, "rm", "x")), cmd(w("rm", "x"), "sudo"),
	}},
	{name: "sudo unquoted variable value", script: "sudo -u $U rm x", err: "cannot tell which command `sudo` runs: $U"},
	{name: "sudo assignments", script: "sudo A=1 rm x", want: []Command{cmd(w("sudo", "A=1", "rm", "x")), cmd(w("rm", "x"), "sudo")}},
	{name: "sudo by path", script: "/usr/bin/sudo rm x", want: []Command{
		cmd(w("/usr/bin/sudo", "rm", "x")), cmd(w("rm", "x"), "/usr/bin/sudo"),
	}},
	{name: "sudo login shell", script: "sudo -i", want: []Command{input(w("sudo", "-i"))}},
	{name: "sudo list", script: "sudo -l rm", want: []Command{cmd(w("sudo", "-l", "rm"))}},
	{name: "sudo edit", script: "sudo -e /etc/hosts", want: []Command{cmd(w("sudo", "-e", "/etc/hosts"))}},
	{name: "sudo missing value", script: "sudo -u", want: []Command{input(w("sudo", "-u"))}},
	{name: "sudo shell command", script: "sudo -s systemctl restart api", want: []Command{
		cmd(w("sudo", "-s", "systemctl", "restart", "api")), cmd(w("systemctl", "restart", "api"), "sudo"),
	}},
	{name: "sudo shell with dollar", script: "sudo -s 'echo $HOME'", err: "cannot tell which command `sudo` runs"},
	{name: "sudo unknown option", script: "sudo -X rm", err: "cannot tell which command `sudo` runs: unknown option -X"},
	{name: "sudo variable option", script: "sudo $OPT rm", err: "cannot tell which command `sudo` runs: $OPT"},
	{name: "sudo variable command", script: `sudo "$CMD"`, err: "cannot tell which command `sudo` runs: \"$CMD\""},
	{name: "sudo of a name built at run time", script: `sudo x"$Y"`, err: `cannot tell which program runs: x"$Y"`},
	{name: "sudo of a name that may split", script: `sudo x$Y`, err: "cannot tell which command `sudo` runs: x$Y"},
	{name: "sudo sudo", script: "sudo sudo rm x", want: []Command{
		cmd(w("sudo", "sudo", "rm", "x")), cmd(w("sudo", "rm", "x"), "sudo"), cmd(w("rm", "x"), "sudo", "sudo"),
	}},
	{name: "sudo bash -c", script: "sudo bash -c 'sudo rm x'", want: []Command{
		cmd(w("sudo", "bash", "-c", "sudo rm x")),
		cmd(w("bash", "-c", "sudo rm x"), "sudo"),
		cmd(w("sudo", "rm", "x"), "sudo", "bash -c"),
		cmd(w("rm", "x"), "sudo", "bash -c", "sudo"),
	}},
	{name: "doas", script: "doas -u root rm x", want: []Command{cmd(w("doas", "-u", "root", "rm", "x")), cmd(w("rm", "x"), "doas")}},
	{name: "doas check", script: "doas -C /etc/doas.conf rm", want: []Command{cmd(w("doas", "-C", "/etc/doas.conf", "rm"))}},
	{name: "env several assignments", script: "env -i A=1 B=2 rm x", want: []Command{
		cmd(w("env", "-i", "A=1", "B=2", "rm", "x")), cmd(w("rm", "x"), "env"),
	}},
	{name: "env assignment with variable value", script: `env A="$X" rm x`, want: []Command{
		cmd(w("env", `A="$X"`, "rm", "x")), cmd(w("rm", "x"), "env"),
	}},
	{name: "env only assignments", script: "env A=1", want: []Command{cmd(w("env", "A=1"))}},
	{name: "env unset and chdir", script: "env -u HOME -C /tmp --unset=X rm x", want: []Command{
		cmd(w("env", "-u", "HOME", "-C", "/tmp", "--unset=X", "rm", "x")), cmd(w("rm", "x"), "env"),
	}},
	{name: "env dash", script: "env - A=1 rm x", want: []Command{cmd(w("env", "-", "A=1", "rm", "x")), cmd(w("rm", "x"), "env")}},
	{name: "env split string", script: "env -S 'rm x'", err: "cannot tell which command `env` runs: -S"},
	{name: "nohup", script: "nohup rm x &", want: []Command{cmd(w("nohup", "rm", "x")), cmd(w("rm", "x"), "nohup")}},
	{name: "nice", script: "nice -n 10 rm x", want: []Command{cmd(w("nice", "-n", "10", "rm", "x")), cmd(w("rm", "x"), "nice")}},
	{name: "nice old style", script: "nice -10 rm x", want: []Command{cmd(w("nice", "-10", "rm", "x")), cmd(w("rm", "x"), "nice")}},
	{name: "ionice", script: "ionice -c2 -n0 rm x", want: []Command{cmd(w("ionice", "-c2", "-n0", "rm", "x")), cmd(w("rm", "x"), "ionice")}},
	{name: "ionice of a process", script: "ionice -c3 -p 42", want: []Command{cmd(w("ionice", "-c3", "-p", "42"))}},
	{name: "timeout options", script: "timeout -s KILL 5 rm x", want: []Command{
		cmd(w("timeout", "-s", "KILL", "5", "rm", "x")), cmd(w("rm", "x"), "timeout"),
	}},
	{name: "timeout long options", script: "timeout --signal=KILL -k 1 --preserve-status 5 rm x", want: []Command{
		cmd(w("timeout", "--signal=KILL", "-k", "1", "--preserve-status", "5", "rm", "x")), cmd(w("rm", "x"), "timeout"),
	}},
	{name: "timeout variable duration", script: `timeout "$T" rm x`, err: "cannot tell which command `timeout` runs: \"$T\""},
	{name: "stdbuf", script: "stdbuf -oL -e0 rm x", want: []Command{cmd(w("stdbuf", "-oL", "-e0", "rm", "x")), cmd(w("rm", "x"), "stdbuf")}},
	{name: "setsid", script: "setsid -f rm x", want: []Command{cmd(w("setsid", "-f", "rm", "x")), cmd(w("rm", "x"), "setsid")}},
	{name: "time program", script: "/usr/bin/time -f %e -o /tmp/t rm x", want: []Command{
		cmd(w("/usr/bin/time", "-f", "%e", "-o", "/tmp/t", "rm", "x")), cmd(w("rm", "x"), "/usr/bin/time"),
	}},
	{name: "time quoted", script: `"time" -p rm x`, want: []Command{cmd(w("time", "-p", "rm", "x")), cmd(w("rm", "x"), "time")}},
	{name: "command", script: "command -p rm x", want: []Command{cmd(w("command", "-p", "rm", "x")), cmd(w("rm", "x"), "command")}},
	{name: "command -v looks up", script: "command -v rm", want: []Command{cmd(w("command", "-v", "rm"))}},
	{name: "builtin", script: "builtin cd /", want: []Command{cmd(w("builtin", "cd", "/")), cmd(w("cd", "/"), "builtin")}},
	{name: "exec", script: "exec -a name rm x", want: []Command{cmd(w("exec", "-a", "name", "rm", "x")), cmd(w("rm", "x"), "exec")}},
	{name: "exec redirections only", script: "exec 3>&1", want: []Command{cmd(w("exec"))}},
	{name: "xargs options", script: "xargs -0 -n1 -I{} rm {}", want: []Command{
		cmd(w("xargs", "-0", "-n1", "-I{}", "rm", "{}")), cmd(w("rm", "{}"), "xargs"),
	}},
	{name: "xargs long options", script: "xargs --null --max-args=1 -P 4 rm", want: []Command{
		cmd(w("xargs", "--null", "--max-args=1", "-P", "4", "rm")), cmd(w("rm"), "xargs"),
	}},
	{name: "xargs alone", script: "xargs", want: []Command{cmd(w("xargs"))}},
	{name: "xargs sh -c with a script", script: "xargs sh -c 'rm \"$@\"' sh", want: []Command{
		cmd(w("xargs", "sh", "-c", `rm "$@"`, "sh")), cmd(w("sh", "-c", `rm "$@"`, "sh"), "xargs"),
		cmd(w("rm", `"$@"`), "xargs", "sh -c"),
	}},
	{name: "xargs sudo", script: "xargs sudo", err: "cannot tell which command `sudo` runs: its command is read from input"},
	{name: "xargs sudo rm", script: "xargs sudo rm", want: []Command{
		cmd(w("xargs", "sudo", "rm")), cmd(w("sudo", "rm"), "xargs"), cmd(w("rm"), "xargs", "sudo"),
	}},
	{name: "xargs sh -c without a script", script: "xargs sh -c", err: "cannot tell which command `sh` runs"},
	{name: "xargs bare shell", script: "xargs bash", err: "cannot tell which command `bash` runs"},
	{name: "xargs eval", script: "xargs eval", err: "cannot tell which command `eval` runs"},
	{name: "xargs find", script: "xargs find .", err: "cannot tell which command `find` runs"},
	{name: "xargs -I program", script: "xargs -I{} {} x", err: "cannot tell which program runs: {}"},
	{name: "xargs -I script", script: "xargs -I{} sh -c 'echo {}'", err: "cannot check a script built at run time: 'echo {}'"},
	{name: "xargs -i script", script: "xargs -i sh -c 'echo {}'", err: "cannot check a script built at run time"},
	{name: "xargs -I custom", script: "xargs -I % sh -c 'echo %'", err: "cannot check a script built at run time"},
	{name: "chroot", script: "chroot --userspec=1:1 /srv rm x", want: []Command{
		cmd(w("chroot", "--userspec=1:1", "/srv", "rm", "x")), cmd(w("rm", "x"), "chroot"),
	}},
	{name: "chroot shell", script: "chroot /srv", want: []Command{input(w("chroot", "/srv"))}},
	{name: "flock", script: "flock -w 5 /tmp/l rm x", want: []Command{
		cmd(w("flock", "-w", "5", "/tmp/l", "rm", "x")), cmd(w("rm", "x"), "flock"),
	}},
	{name: "flock -c", script: "flock -n /tmp/l -c 'rm x'", want: []Command{
		cmd(w("flock", "-n", "/tmp/l", "-c", "rm x")), cmd(w("rm", "x"), "flock -c"),
	}},
	{name: "flock -c variable", script: `flock /tmp/l -c "$X"`, err: "cannot check a script built at run time"},
	{name: "watch", script: "watch -n 1 'ls; rm x'", want: []Command{
		cmd(w("watch", "-n", "1", "ls; rm x")), cmd(w("ls"), "watch"), cmd(w("rm", "x"), "watch"),
	}},
	{name: "watch joins its words", script: "watch ls '|' wc", want: []Command{
		cmd(w("watch", "ls", "|", "wc")), cmd(w("ls"), "watch"), cmd(w("wc"), "watch"),
	}},
	{name: "watch -x", script: "watch -x rm x", want: []Command{cmd(w("watch", "-x", "rm", "x")), cmd(w("rm", "x"), "watch")}},
	{name: "sg runs its command with sh -c", script: `sg root "rm -rf /"`, want: []Command{
		cmd(w("sg", "root", "rm -rf /")), cmd(rmrf, "sg"),
	}},
	{name: "sg -c", script: "sg - wheel -c 'echo hi; rm -rf /'", want: []Command{
		cmd(w("sg", "-", "wheel", "-c", "echo hi; rm -rf /")), cmd(w("echo", "hi"), "sg"), cmd(rmrf, "sg"),
	}},
	{name: "sg without a command starts a shell", script: "sg root", want: []Command{input(w("sg", "root"))}},
	{name: "sg with a command built at run time", script: `sg root "$CMD"`, err: "built at run time"},
	{name: "sg with more than one word", script: "sg root rm -rf /", err: "one word"},
	{name: "newgrp starts a shell", script: "newgrp wheel", want: []Command{input(w("newgrp", "wheel"))}},
	{name: "substitution in an extended glob of [[", script: "echo ok; [[ x == @($(rm -rf /)) ]]", err: "extended glob"},
	{name: "substitution in an extended glob", script: "shopt -s extglob\necho @(a$(rm -rf /))", err: "extended glob"},
	{name: "substitution in an extended glob of a case pattern", script: "case x in @($(rm -rf /))) ls;; esac", err: "extended glob"},
	{name: "backticks in an extended glob", script: "[[ x == +(`rm -rf /`) ]]", err: "extended glob"},
	{name: "extended glob without expansions", script: "[[ x == @(a|b) ]]; ls", want: []Command{cmd(w("ls"))}},
	{name: "runuser -u", script: "runuser -u bob -- rm -rf /", want: []Command{
		cmd(w("runuser", "-u", "bob", "--", "rm", "-rf", "/")), cmd(rmrf, "runuser"),
	}},
	{name: "runuser reads options after the command", script: "runuser -u bob ls -l", want: []Command{
		cmd(w("runuser", "-u", "bob", "ls", "-l")), cmd(w("ls"), "runuser"),
	}},
	{name: "runuser -c", script: "runuser -l bob -c 'rm x'", want: []Command{
		cmd(w("runuser", "-l", "bob", "-c", "rm x")), cmd(w("rm", "x"), "runuser -c"),
	}},
	{name: "su -c", script: "su -c 'rm -rf /'", want: []Command{cmd(w("su", "-c", "rm -rf /")), cmd(rmrf, "su -c")}},
	{name: "su - user -c", script: `su - postgres -c 'psql -c "select 1"'`, want: []Command{
		cmd(w("su", "-", "postgres", "-c", `psql -c "select 1"`)), cmd(w("psql", "-c", "select 1"), "su -c"),
	}},
	{name: "su --command", script: "su --command='rm x' root", want: []Command{
		cmd(w("su", "--command=rm x", "root")), cmd(w("rm", "x"), "su -c"),
	}},
	{name: "su login", script: "su - root", want: []Command{input(w("su", "-", "root"))}},
	{name: "time alone", script: "time", want: []Command{cmd(w("time"))}},
	{name: "su variable script", script: `su -c "$X"`, err: `cannot check a script built at run time: "$X"`},
	{name: "su words to the shell", script: "su root -- -c x", err: "cannot tell which command `su` runs"},
	{name: "su other shell", script: "su -s /usr/bin/python3 -c x", err: "not one that can be checked"},
	{name: "find -exec +", script: "find . -name '*.tmp' -exec rm {} +", want: []Command{
		cmd(w("find", ".", "-name", "*.tmp", "-exec", "rm", "{}", "+")), cmd(w("rm", "{}"), "find -exec"),
	}},
	{name: "find several actions", script: "find . -execdir a {} ';' -ok b {} \\;", want: []Command{
		cmd(w("find", ".", "-execdir", "a", "{}", ";", "-ok", "b", "{}", ";")),
		cmd(w("a", "{}"), "find -execdir"), cmd(w("b", "{}"), "find -ok"),
	}},
	{name: "find plus inside the command", script: "find . -exec a + b {} +", want: []Command{
		cmd(w("find", ".", "-exec", "a", "+", "b", "{}", "+")), cmd(w("a", "+", "b", "{}"), "find -exec"),
	}},
	{name: "find without exec", script: "find . -name '*.go' -delete", want: []Command{
		cmd(w("find", ".", "-name", "*.go", "-delete")),
	}},
	{name: "find unclosed exec", script: "find . -exec rm {}", err: "cannot tell which command `find` runs: -exec is not closed"},
	{name: "find variable", script: `find "$D" -name x`, err: "cannot tell which command `find` runs: \"$D\""},
	{name: "find exec of found file", script: `find . -exec {} \;`, err: "cannot tell which program runs: {}"},
	{name: "find exec script with names", script: `find . -exec sh -c 'echo {}' \;`, err: "cannot check a script built at run time"},
	{name: "find exec sh -c with arguments", script: `find . -exec sh -c 'rm "$1"' sh {} \;`, want: []Command{
		cmd(w("find", ".", "-exec", "sh", "-c", `rm "$1"`, "sh", "{}", ";")),
		cmd(w("sh", "-c", `rm "$1"`, "sh", "{}"), "find -exec"),
		cmd(w("rm", `"$1"`), "find -exec", "sh -c"),
	}},
	{name: "trap", script: "trap 'rm -rf /' EXIT", want: []Command{cmd(w("trap", "rm -rf /", "EXIT")), cmd(rmrf, "trap")}},
	{name: "trap reset", script: "trap - INT; trap INT", want: []Command{cmd(w("trap", "-", "INT")), cmd(w("trap", "INT"))}},
	{name: "trap variable", script: `trap "$X" EXIT`, err: "cannot check a script built at run time"},
	{name: "alias", script: "alias ll='ls -l' k='rm -rf /'", want: []Command{
		cmd(w("alias", "ll=ls -l", "k=rm -rf /")), cmd(w("ls", "-l"), "alias"), cmd(rmrf, "alias"),
	}},
	{name: "wrappers nested too deep", script: strings.Repeat("nice ", MaxVia+1) + "rm", err: "nested in more than 32 wrappers and scripts"},
	{name: "wrappers nested to the limit", script: strings.Repeat("nice ", MaxVia) + "rm", want: chainWant("nice", MaxVia, "rm")},
	{name: "ssh is not a wrapper", script: "ssh host rm -rf /", want: []Command{cmd(w("ssh", "host", "rm", "-rf", "/"))}},

	// Rule 6: assignments and builtins.
	{name: "assignment only", script: "X=1", want: nil},
	{name: "assignments walked", script: "X=1 Y=$(a)", want: []Command{cmd(w("a"))}},
	{name: "builtins", script: "cd /tmp && echo ok; true", want: []Command{
		cmd(w("cd", "/tmp")), cmd(w("echo", "ok")), cmd(w("true")),
	}},

	// Text bash would evaluate again later.
	{name: "substitution in a literal value", script: "X='$(rm -rf /)' ls", err: "cannot check the value of X"},
	{name: "PS4", script: "PS4='`rm x`' bash -xc ls", err: "cannot check the value of PS4"},
	{name: "declared value", script: `export P="\$(rm x)"`, err: "cannot check the value of P"},
	{name: "env value", script: "env PS4='$(rm x)' bash -xc ls", err: "cannot check PS4='$(rm x)'"},
	{name: "sudo value", script: "sudo 'PS4=`rm x`' bash -xc ls", err: "the value holds a command substitution"},
	{name: "prompt expansion", script: "echo ${X@P}", err: "cannot check ${X@P}"},
	{name: "subscript in printf -v", script: "printf -v 'a[$(id)]' x", err: "bash runs the command substitution in its subscript"},
	{name: "subscript in let", script: "let 'a[$(id)]=1'", err: "bash runs the command substitution in its subscript"},
	{name: "subscript in test clause", script: "[[ -v 'a[$(id)]' ]]", err: "bash runs the command substitution in its subscript"},
	{name: "plain text with parentheses", script: "echo '$(not run)'", want: []Command{cmd(w("echo", "$(not run)"))}},
}

// chainWant lists the commands of n nested wrappers, each named name,
// around the command inner.
func chainWant(name string, n int, inner string) []Command {
	var want []Command
	var via []string
	for i := range n {
		var argv []string
		for range n - i {
			argv = append(argv, name)
		}
		want = append(want, cmd(append(argv, inner), via...))
		via = append(via, name)
	}
	return append(want, cmd(w(inner), via...))
}

// deepShell nests n sh -c, quoting each level for the next.
func deepShell(n int) string {
	s := "a"
	for range n {
		s = "sh -c '" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

func TestCommands(t *testing.T) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Commands(tc.script)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Commands(%q) = %q, want an error with %q", tc.script, texts(got), tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Commands(%q) error = %q, want it to hold %q", tc.script, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Commands(%q) error = %v", tc.script, err)
			}
			// What is known of the words is checked in TestKnownWords.
			for i := range got {
				got[i].Known, got[i].Appends = 0, false
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Commands(%q)\n got %#v\nwant %#v", tc.script, got, tc.want)
			}
		})
	}
}

// Words that expand at run time, and words xargs appends or fills in,
// are not known: patterns that some value of them could match apply.
func TestKnownWords(t *testing.T) {
	for _, c := range []struct {
		script  string
		text    string
		known   int
		appends bool
	}{
		{"touch approved", "touch approved", 2, false},
		{"touch $F", "touch $F", 1, false},
		{"touch a \"$(date)\" b", "touch a \"$(date)\" b", 2, false},
		{"rm *.txt", "rm *.txt", 1, false},
		{"touch app{r,}oved", "touch app{r,}oved", 1, false},
		{"cat ./notes", "cat ./notes", 2, false},
		{"echo a | xargs touch", "touch", 1, true},
		{"echo a | xargs -I{} touch x{}", "touch x{}", 1, false},
		{"find . -exec touch {} +", "touch {}", 1, false},
	} {
		got, err := Commands(c.script)
		if err != nil {
			t.Fatalf("%s: %v", c.script, err)
		}
		var k Command
		for _, g := range got {
			if g.Text == c.text {
				k = g
			}
		}
		if k.Text != c.text || k.Known != c.known || k.Appends != c.appends {
			t.Errorf("%s: got %q known %d appends %v, want %q known %d appends %v", c.script, k.Text, k.Known, k.Appends, c.text, c.known, c.appends)
		}
	}
}

func texts(cmds []Command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.Text)
	}
	return out
}

func TestDeepShellWithinLimit(t *testing.T) {
	got, err := Commands(deepShell(MaxDepth))
	if err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if last.Text != "a" || len(last.Via) != MaxDepth {
		t.Errorf("innermost command = %+v, want a inside %d shells", last, MaxDepth)
	}
}

func TestLimits(t *testing.T) {
	if _, err := Commands(strings.Repeat("#", MaxScriptBytes)); err != nil {
		t.Errorf("a script of exactly %d bytes: %v", MaxScriptBytes, err)
	}
	_, err := Commands(strings.Repeat("#", MaxScriptBytes+1))
	if err == nil || !strings.Contains(err.Error(), "at most 65536 bytes") {
		t.Errorf("a script over the size limit: error = %v", err)
	}
	distinct := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "true %d;", i)
		}
		return b.String()
	}
	if got, err := Commands(distinct(MaxCommands)); err != nil || len(got) != MaxCommands {
		t.Errorf("%d commands: %d commands, error %v", MaxCommands, len(got), err)
	}
	_, err = Commands(distinct(MaxCommands + 1))
	if err == nil || !strings.Contains(err.Error(), "more than 1000 commands") {
		t.Errorf("too many commands: error = %v", err)
	}
	// Commands found in nested scripts count towards the same limit.
	_, err = Commands("bash -c '" + distinct(MaxCommands) + "'")
	if err == nil || !strings.Contains(err.Error(), "more than 1000 commands") {
		t.Errorf("too many commands in a nested script: error = %v", err)
	}
}

// Lines whose checking grows faster than their text are refused for it,
// early: every workload on a node shares the agent's checking, and a
// kilobyte of these took seconds.
func TestLimitsOnWork(t *testing.T) {
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	wrappers := "taskset chrt prlimit numactl ltrace pkexec eatmydata unbuffer faketime cgexec "
	for _, c := range []struct{ line, err string }{
		{"a=1; echo $((" + nest("a[", "1", "]", 300) + "))", "nests brackets 302 deep"},
		{`echo "` + nest("${a:=", "1", "}", 150) + `"`, "nests brackets 150 deep"},
		{"bash -c $'" + nest(`\x28`, "true", `\x29`, 100) + "'", "nests brackets 100 deep"},
		{wrappers + "sh -c 'a=1; echo $((" + nest("a[", "1", "]", 60) + "))'", "too much checking"},
		{wrappers + `sh -c 'echo "` + nest("${a:=", "1", "}", 60) + `"'`, "come to more than"},
		{wrappers[:60] + strings.Repeat("x", 60000), "too much checking"},
	} {
		if _, err := Commands(c.line); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%.60s...: error = %v, want %q", c.line, err, c.err)
		}
	}
	// 64 deep is checked, and so are long scripts nested in one another,
	// read once each.
	if _, err := Commands("a=1; echo $((" + nest("a[", "1", "]", 62) + "))"); err != nil {
		t.Errorf("62 subscripts deep: %v", err)
	}
	body := strings.Repeat("x=1; ", 8800) + "echo done"
	for _, line := range []string{`sh -c "sudo sh -c '` + body + `'"`, `taskset -c 0 sh -c '` + body + `'`} {
		if _, err := Commands(line); err != nil {
			t.Errorf("%.30s... (%d bytes): %v", line, len(line), err)
		}
	}
}

func TestTextJoinsArgv(t *testing.T) {
	got, err := Commands(`printf '%s\n' "a  b" c`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Text != `printf %s\n a  b c` {
		t.Errorf("got %#v", got)
	}
}

func FuzzCommands(f *testing.F) {
	for _, tc := range tests {
		f.Add(tc.script)
	}
	f.Fuzz(func(t *testing.T, script string) {
		got, err := Commands(script)
		if err != nil {
			if got != nil {
				t.Errorf("Commands(%q) returned commands with error %v", script, err)
			}
			return
		}
		if len(got) > MaxCommands {
			t.Errorf("Commands(%q) returned %d commands", script, len(got))
		}
		for _, c := range got {
			if len(c.Argv) == 0 {
				t.Fatalf("Commands(%q) returned a command without words: %#v", script, c)
			}
			if strings.ContainsAny(c.Argv[0], "$`") {
				t.Fatalf("Commands(%q) returned a program name that expands: %q", script, c.Argv[0])
			}
			if c.Text != strings.Join(c.Argv, " ") {
				t.Fatalf("Commands(%q): Text %q is not Argv %q joined", script, c.Text, c.Argv)
			}
		}
		// Reading the line as one shell finds nothing that reading it as
		// either would not.
		for _, login := range []Shell{Bash, POSIX} {
			one, err := CommandsAs(script, login)
			if err != nil {
				continue
			}
			for _, c := range one {
				if !slices.ContainsFunc(got, func(e Command) bool { return e.Text == c.Text }) {
					t.Fatalf("CommandsAs(%q, %v) finds %q, which Commands does not", script, login, c.Text)
				}
			}
		}
	})
}

// Ways to run a command that the parse tree alone does not show; each
// is found or refused.
func TestHiddenCommands(t *testing.T) {
	for _, c := range []struct {
		script string
		find   string // a command that must be among those found; "" when refused
	}{
		{"sh -c '((rm -rf - v1))\ncat <<< x'", ""},
		{"sh -c 'echo hi &>/dev/null; ((rm -f - a2))'", ""},
		{"cat <<< x; sh -c '((rm -rf - v1))'", ""},
		{"shopt -s expand_aliases\nalias e=eval\ne 'rm -rf v3'", ""},
		{"alias t=touch\nt approved1", ""},
		{"read -r PS4 <<< '$(rm -f v6)'; set -x; :", ""},
		{"printf -v PS4 %s x; set -x; :", ""},
		{"PS4=$X; set -x; :", ""},
		{"read -r x <<< 'a[$(rm -f v7)]'; echo $((x))", ""},
		{"mapfile -t -C 'rm -f b1 #' -c 1 a <<< x", ""},
		{"readarray -C 'rm -f b1 #' a <<< x", ""},
		{"compgen -C 'rm -f b2' x", ""},
		{"enable -f /tmp/x.so x", ""},
		{"jobs -x rm -f b3", "rm -f b3"},
		{"taskset 1 rm -f v8", "rm -f v8"},
		{"ld.so /usr/bin/rm -rf v8", "/usr/bin/rm -rf v8"},
		{"/lib64/ld-linux-x86-64.so.2 /usr/bin/rm -rf v8", "/usr/bin/rm -rf v8"},
		{"/lib/x86_64-linux-gnu/ld-2.31.so /usr/bin/rm -rf v8", "/usr/bin/rm -rf v8"},
		{"/lib/ld.so.1 /usr/bin/rm -rf v8", "/usr/bin/rm -rf v8"},
		{"choom -n 0 -- rm -rf v8", "rm -rf v8"},
		{"fakeroot-tcp rm -rf v8", "rm -rf v8"},
		{"perf stat rm -rf v8", "rm -rf v8"},
		{"dpkg-architecture -c rm -rf v8", "rm -rf v8"},
		{"taskset -c 0-3 nice -n 5 rm -f v8", "rm -f v8"},
		{"setpriv --reuid=1000 rm -f v9", "rm -f v9"},
		{"script -qc 'rm -f v10' /dev/null", "rm -f v10"},
		{"script -q -c 'rm -f v10' /dev/null", "rm -f v10"},
		{"echo $((" + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100) + "))", ""},
		{"jobs -x -- touch approvedA", "touch approvedA"},
		{"taskset 1 /bin/r? -f v3", ""},
		{"X=rm; taskset 1 $X -f v11", ""},
		{"script -q --command='rm -f v4' /dev/null", "rm -f v4"},
		{"script -q -c'rm -f v5' /dev/null", "rm -f v5"},
		{"for PS4 in '$(rm -f v6)'; do set -x; :; done", ""},
		{"for x in 'a[$(rm -f a3)]'; do echo $((x)); done", ""},
		{"echo ${x:='a[$(rm -f a4)]'} $((x))", ""},
		{"shopt -s expand_aliases; f() { eval 'x -f v7'; }; alias x=rm; f", ""},
		{"sh -c 'trap \"x -f v8\" EXIT; alias x=rm'", ""},
		{"a=(1); shopt -s expand_aliases; BASH_ALIASES[ls]='rm -f v10'\nls", ""},
		{"set -o history\nhistory -s 'rm -f v9'\nfc -s rm", ""},
		{"x=a[$(echo '$')\"(rm -f a5)]\"; echo $((x))", ""},
		{"read x; echo $((x + 1))", ""},
		{"echo $(( $(cat f) ))", ""},
		{"for i in $(seq 3); do echo $((i*2)); done", ""},
		{"[[ $REPLY -eq 1 ]] && echo one", ""},
		{"for i in 1 2 3; do echo $((i*2)); done", "echo $((i*2))"},
		{"declare -i n; n=$X; echo $n", ""},
		{"sh -c \"echo \\\"\\${x-'}\\\"; rm -rf v1; echo \\\"'}\\\"\"", ""},
		{"echo \"${x-'}\"; touch PWN; echo \"'}\"", ""},
		{"d=\\$; OPTIND=\"a[${d}(rm -rf v2)]\"; echo $((OPTIND))", ""},
		{"_=1; d=\\$; echo \"a[${d}(rm -rf v3)]\"; echo $((_))", ""},
		{"REPLY=1; d=\\$; read <<< \"a[${d}(rm -rf v4)]\"; echo $((REPLY))", ""},
		{"d=\\$; env x=\"a[${d}(rm -rf v5)]\" bash -c 'echo $((x)); x=1'", ""},
		{"echo hi &>/dev/null\necho $'a\\'\ntouch PWN\n\\''", ""},
		{"echo touch a4 > envf2; ENV=./envf2 sh -c -i ls", ""},
		{"BASH_ENV=./f bash -c ls", ""},
		{"env LD_PRELOAD=/tmp/x.so ls", ""},
		{"echo x > .bash_aliases", ""},
		{"i=0; while read -r line; do i=$((i+1)); done < f; echo $i", "echo $i"},
		{"echo \"${x:-'$(rm -rf va1)'}\"", ""},
		{"echo \"${x+'`rm -rf va1`'}\"", ""},
		{"cat - <<E\n${x:-'$(rm -rf va4)'}\nE", ""},
		{"echo \"${x#'$(not run)'}\"", "echo \"${x#'$(not run)'}\""},
		{"echo \"$\\\n(rm -rf va2)\"", ""},
		{"cat - <<E\n$\\\n(rm -rf va3)\nE", ""},
		{"echo x >& ~/.bashrc", ""},
		{"echo x >&2", "echo x"},
		{"x=rc; echo y > ~/.ssh/$x", ""},
		{"echo y > ~/.bash$x", ""},
		{"echo y > $LOG", "echo y"},
		{": 'x[$(rm -rf vd1)]'; echo $((_))", ""},
		{"a=$(echo x); b=a; echo $((b))", ""},
		{"echo $(( ${u:-a} ))", ""},
		{"let \"a\"", ""},
		{"(( \"a\" ))", ""},
		{"command let a", ""},
		{"[[ -v arr[a] ]]", ""},
		{"test -v 'arr[a]'", ""},
		{"printf -v 'arr[a]' x", ""},
		{"r='arr[a]'; echo ${!r}", ""},
		{"echo ${!arr[@]} ${!BASH*}", "echo ${!arr[@]} ${!BASH*}"},
		{"bash -c 'echo $(( $0 ))' 'x'", ""},
		{"echo x | { \\declare -i n; read n; }", ""},
		{"builtin declare -n r=a", ""},
		{"printf -vx 'y[\\044(touch x)]'; echo $((x))", ""},
		{"printf -v 'BASH_CMDS[ls]' %s /bin/rm; ls -rf x", ""},
		{"read 'BASH_CMDS[ls]' <<< /bin/rm", ""},
		{"x=1; PS4='${x@P}'; set -x; :", ""},
		{"read 'PS4[0]' <<< x", ""},
		{"n=5; echo $((n * 2 + ${#n}))", "echo $((n * 2 + ${#n}))"},
		{"for ((i = 0; i < 3; i++)); do echo $((i + 16#ff)); done", "echo $((i + 16#ff))"},
		{"echo 'rm -f r1' > .bashrc", ""},
		{"echo x >> ~/.profile", ""},
		{"echo x >> $HOME/.bashrc", ""},
		{"echo x > /home/deploy/.ssh/rc", ""},
		{"echo x > notes.txt", "echo x"},
		{"cat - <<E\nx\nE\\\n\nrm -f h1\nE\necho ok", ""},
		{"cat - <<E\nx \\\ny\nE\necho ok", "echo ok"},
		{"cat - <<'E'\nE\\\n\nrm -f h1\nE\necho ok", "echo ok"},
		{"declare -n r=x; x=$(cat f); echo $((r))", ""},
		{"export -n X", ""},
		{"n=3; [[ $n -gt 2 ]] && echo big", "echo big"},
		{"taskset " + strings.Repeat("sudo ", 31) + "x " + strings.Repeat("-a ", 10000), ""},
	} {
		got, err := Commands(c.script)
		if c.find == "" {
			if err == nil {
				t.Errorf("%q: found %q, want it refused", c.script, texts(got))
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.script, err)
			continue
		}
		if !slices.Contains(texts(got), c.find) {
			t.Errorf("%q: found %q, want %q among them", c.script, texts(got), c.find)
		}
	}
}

// With the target's login shell known, the line is read as that shell
// reads it and only so; scripts it hands to other shells are read as
// before.
func TestLoginShell(t *testing.T) {
	hidden := `echo $'\' ; touch /tmp/x ; #'`
	cases := []struct {
		script string
		login  Shell
		want   []string // command texts; nil with err
		err    string
	}{
		{hidden, AnyShell, []string{"echo ' ; touch /tmp/x ; #", `echo $\`, "touch /tmp/x"}, ""},
		{hidden, Bash, []string{"echo ' ; touch /tmp/x ; #"}, ""},
		{hidden, POSIX, []string{"echo ' ; touch /tmp/x ; #", `echo $\`, "touch /tmp/x"}, ""},
		// bash run as sh reads $'...' as bash does.
		{`echo $'x\'  #'; touch PWN #'`, POSIX, []string{"echo x'  #", "touch PWN", `echo $x\`}, ""},
		// bash's redirection &> is background and a redirection to sh:
		// where sh cannot read on, a sh login shell's line is refused.
		{"echo hi &>/dev/null\necho $'a\\'\ntouch PWN\n\\''", AnyShell, nil, "$'...'"},
		{"echo hi &>/dev/null\necho $'a\\'\ntouch PWN\n\\''", Bash, []string{"echo hi", "echo a'\ntouch PWN\n'"}, ""},
		{"echo hi &>/dev/null\necho $'a\\'\ntouch PWN\n\\''", POSIX, nil, "login shell, a POSIX sh"},
		{"[[ -f x ]] && ls", POSIX, []string{"ls", "[[ -f x ]]"}, ""},
		{"ls; echo ${x/a/b}", POSIX, nil, "login shell, a POSIX sh"},
		// A nested script keeps its own shell's reading: sh -c must read
		// as sh does, whatever the login shell.
		{`sh -c 'echo $'"'"'\'"'"' ; touch /tmp/y ; #'"'"`, Bash, []string{`sh -c echo $'\' ; touch /tmp/y ; #'`, "echo ' ; touch /tmp/y ; #", `echo $\`, "touch /tmp/y"}, ""},
	}
	for _, c := range cases {
		got, err := CommandsAs(c.script, c.login)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("CommandsAs(%q, %v) = %q, %v; want an error with %q", c.script, c.login, texts(got), err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("CommandsAs(%q, %v): %v", c.script, c.login, err)
			continue
		}
		if !slices.Equal(texts(got), c.want) {
			t.Errorf("CommandsAs(%q, %v) = %q, want %q", c.script, c.login, texts(got), c.want)
		}
	}
}

// Ways a command hides from a deny list: a name built at run time that a
// builtin takes (bash runs its subscript), keyword mode, wrappers under
// other names, `time --`. Each is refused or shows the command it runs.
func TestCommandsHiddenRunners(t *testing.T) {
	for _, c := range []struct {
		script string
		login  Shell
		err    string // refused, with this in the error
		runs   string // else: a command of this name is seen
		input  bool   // and something reads commands from input
	}{
		{script: `set -- 'a[$(rm -rf v1)]'; test -v "$1"`, err: "the name is built at run time"},
		{script: `x='a[$' y='(rm -rf v2)]'; test -v "$x$y"`, err: "the name is built at run time"},
		{script: `test "$op" "$x"`, err: "does not give x only numbers"},
		{script: `set -- 'a[$(rm -rf v9)]'; printf -v "$1" x`, err: "the name is built at run time"},
		{script: `printf -v"$1" x`, err: "the name is built at run time"},
		{script: `read -r "$1"`, err: "the name is built at run time"},
		{script: `read -ra "$1"`, err: "the name is built at run time"},
		{script: `unset "$1"`, err: "the name is built at run time"},
		{script: `getopts ab "$1"`, err: "the name is built at run time"},
		{script: `[[ -v $1 ]]`, login: Bash, err: "the name is built at run time"},
		{script: `printf -v BASH_ENV /dev/stdin`, err: "it sets BASH_ENV"},
		{script: `read LD_PRELOAD`, err: "it sets LD_PRELOAD"},
		{script: `set -k; nice X=1 rm -rf v10`, err: "keyword mode"},
		{script: `set -eo keyword`, err: "keyword mode"},
		{script: `bash -k -c 'nice X=1 rm -rf v'`, err: "keyword mode"},
		{script: `tmux new-session -d 'rm -rf v'`, err: "commands given as strings"},
		{script: `echo rm -rf v8 | xargs ssh-agent`, err: "read from input"},
		{script: `test -f "$file" && [ "$a" = "$b" ] && [ -n "$x" ]`, runs: "test"},
		{script: `read -r line; printf -v out '%s' "$line"; unset -f "$f"`, runs: "read"},
		{script: `set -e -- "$@"; rm -rf v`, runs: "rm"},
		{script: `ssh-agent rm -rf v5`, runs: "rm", input: true},
		{script: `ssh-agent`, runs: "ssh-agent", input: true},
		{script: `x86_64 rm -rf v6`, runs: "rm"},
		{script: `setarch x86_64`, runs: "setarch", input: true},
		{script: `fakeroot make`, runs: "make", input: true},
		{script: `unshare --setgroups deny -U`, runs: "unshare", input: true},
		{script: `logsave /dev/null rm -rf v7`, runs: "rm"},
		{script: `time -- rm -rf t1`, login: Bash, runs: "rm"},
		{script: `script -q /dev/null`, runs: "script", input: true},
		{script: `su`, runs: "su", input: true},
		{script: `at now`, runs: "at", input: true},
		// A subscript spelled with $'\u..' and octal escapes.
		{script: `u0024=0; let $'\141[\u0024(\162\155\040v)]=1'`, err: "runs the command substitution in its subscript"},
		{script: `u0024=0; x=$(( $'\141[\u0024(\162\155\040v)]' ))`, err: "runs the command substitution in its subscript"},
		{script: `u0024=0; [[ 1 -lt $'\141[\U00000024(\162\155\040v)]' ]]`, err: "runs the command substitution in its subscript"},
		// dash reads on past bash's redirections, and runs [[ ]] and (( )).
		{script: "echo hi &>/dev/null\n[[ x || rm = v ]]", err: "would run the words of [[ ]] as commands"},
		{script: "{x}>/dev/null echo hi; [[ x || rm = v ]]", err: "would run the words of [[ ]] as commands"},
		{script: "v=1; echo hi &>>/dev/null\n((rm - v))", err: "would run the words of (( )) as commands"},
		{script: "echo hi &>/dev/null\n[[ x || rm = v ]]", login: Bash, runs: "echo"},
		{script: "echo hi &>/dev/null; [[ -f x ]] && ls", runs: "ls"},
		// compgen -W expands its word list, -F runs a function.
		{script: "compgen -W '$(rm v)' x", err: "may run a command given as a string"},
		{script: "compgen -W '`rm v`'", err: "may run a command given as a string"},
		{script: "compgen -W '<(rm v)' x", err: "may run a command given as a string"},
		{script: "compgen -F f x", err: "may run a command given as a string"},
		{script: "compgen -W 'start stop' -- st", runs: "compgen"},
		// bash's \x{..} takes every hex digit and keeps the low byte.
		{script: `x=0; let $'\141[\x{124}(\162\155\040v)]=1'`, err: "runs the command substitution in its subscript"},
		{script: `x=0; let $'\141[\x{000000024}(\162\155\040v)]=1'`, err: "runs the command substitution in its subscript"},
		{script: `x=0; let $'\x{61[\044(\162\155\040v; : })]=1'`, err: "runs the command substitution in its subscript"},
		// A [[ ]] across lines is split by dash there too.
		{script: "echo hi &>/dev/null\n[[\nrm == y\n]]", err: "would run the words of [[ ]] as commands"},
		// Round two: bash's $'\x{..}', exported functions, strace's pipe,
		// start-up files, SHELL, commands in options.
		{script: `env 'BASH_FUNC_ls%%=() { rm -rf d2; }' bash -c ls`, err: "BASH_FUNC_ls%%"},
		{script: `strace -o'|rm -rf d3' true`, runs: "rm"},
		{script: `strace -fo '!rm -rf d3' true`, runs: "rm"},
		{script: `strace -o out.txt rm -rf d3`, runs: "rm"},
		{script: `bash --rcfile /dev/stdin -ic true`, runs: "bash", input: true},
		{script: `bash --rcfile /x -c true`, runs: "bash"},
		{script: `SHELL=/tmp/x flock lk -c true`, err: "SHELL"},
		{script: `script -q --comm='rm -rf d4' /dev/null`, err: "abbreviated option"},
		{script: `capsh --shell=/bin/rm -- -rf d11`, err: "runs a program of its choosing"},
		{script: `tar cf /dev/null f --checkpoint=1 --checkpoint-action=exec=rm`, runs: "rm"},
		{script: `tar --to-com='rm -rf d6' -xf a.tar`, runs: "rm"},
		{script: `tar xIf 'rm -rf d6' a.tar`, err: "write its options with dashes"},
		{script: `tar -x -f -- --to-command='rm -rf d6'`, runs: "rm"},
		{script: `tar -I zstd -cf a.tar.zst dir && tar xzf "$f"`, runs: "zstd"},
		{script: `tar czf out.tgz --checkpoint=100 dir`, runs: "tar"},
		{script: `ssh -vo ProxyCommand='rm -rf d10' h`, runs: "rm"},
		{script: `ssh -o $'ProxyCommand\trm -rf d' h`, runs: "rm"},
		{script: `ssh -o '"ProxyCommand" rm -rf d' h`, runs: "rm"},
		{script: `ssh -o "$X" h`, err: "its value is made at run time"},
		{script: `ssh -o PKCS11Provider=/tmp/x.so h`, err: "loads a library"},
		{script: `ssh -l -- -oProxyCommand='rm -rf d' h`, runs: "rm"},
		{script: `ssh host ps -eo pid,command`, runs: "ssh"},
		{script: `ssh -i "$key" -p 2222 host true`, runs: "ssh"},
		{script: `ssh -S ~/.ssh/cm -o ControlMaster=auto host true`, runs: "ssh"},
		{script: `sftp -D 'rm -rf d' host`, runs: "rm", input: true}, // and sftp's own commands, ! among them
		{script: `ssh -o StrictHostKeyChecking=no h true`, runs: "ssh"},
		{script: `git -c alias.x='!rm -rf d8' x`, runs: "rm"},
		{script: `git -c "alias.x=$Y" x`, err: "its value is made at run time"},
		{script: `git -c core.editor=vim commit && git grep -c editor`, runs: "vim", input: true}, // an editor reads its keys from input
		{script: `git -c include.path=/tmp/x log`, err: "from elsewhere"},
		{script: `git fetch --upload-pack='rm -rf d' origin`, runs: "rm"},
		{script: `git submodule foreach 'rm -rf d'`, runs: "rm"},
		{script: `git bisect run rm -rf d`, runs: "rm"},
		{script: `git -c user.name=ci commit -m x && git cherry-pick -x abc`, runs: "git"},
		{script: `git rebase -x 'rm -rf d' HEAD~2`, runs: "rm"},
		{script: `rsync -e 'rm -rf d' a b:`, runs: "rm"},
		{script: `rsync -avze ssh a b:`, runs: "ssh"},
		{script: `rsync -T -- -e 'rm -rf d' a b:`, runs: "rm"},
		{script: `man -Pcat ls && sort --compress-program=gzip -o out in`, runs: "gzip"},
		{script: `dbus-run-session -- rm -rf d`, runs: "rm", input: true},
		{script: `set -- -v 'a[$(rm -rf /x)]'; test "$@"`, err: "the name is built at run time"},
		{script: `set -- -v 'a[$(rm -rf /x)]'; [ "$@" ]`, err: "the name is built at run time"},
		{script: `set -- -v 'a[$(rm -rf /x)]'; printf "$@"`, err: "the name is built at run time"},
		{script: `set -- -p 'a[$(rm -rf /x)]'; wait -n "$@"`, err: "the name is built at run time"},
		{script: `test $*`, err: "the name is built at run time"},
		{script: `set +o posix -o keyword`, err: "keyword mode"},
		{script: `set -oe keyword`, err: "keyword mode"},
		{script: `shopt -so keyword`, err: "keyword mode"},
		{script: `shopt -s -o keyword`, err: "keyword mode"},
		{script: `shopt -s extglob; set -euo pipefail; printf '%s\n' "$@"`, runs: "printf"},
		{script: `i686`, runs: "i686", input: true},
		{script: `aarch64 rm -rf d`, runs: "rm"},
		// Round three: options after ssh's host, its %-tokens and key
		// spellings, -F; tar's optional and old-style arguments; git's
		// aliases, subcommands and environment; abbreviations, braces,
		// words split or filled at run time.
		{script: `ssh x -oProxyCommand='rm -rf d'`, runs: "rm"},
		{script: `ssh -o 'ProxyCommand=%h -rf d' rm`, err: "cannot"},
		{script: `ssh -o ProxyCommand='ssh -W %h:%p bastion' db true`, runs: "ssh"},
		{script: `ssh -o 'Proxy"Command"=rm -rf d' x`, runs: "rm"},
		{script: `ssh -o '=ProxyCommand=rm -rf d' x`, runs: "rm"},
		{script: `ssh -F /dev/stdin x`, err: "from a file"},
		{script: `slogin -oProxyCommand='rm -rf d' x`, runs: "rm"},
		{script: `tar --checkpoint --to-command='rm -rf d' -xf a.tar`, runs: "rm"},
		{script: `tar -xf a.tar --checkpoint=1 --checkpoint-action='exec="true;rm -rf d"'`, err: "quotes"},
		{script: `tar xf -C --to-command='rm -rf d'`, runs: "rm"},
		{script: `tar {-xf,a.tar,--to-command=zzdanger}`, err: "options at run time"},
		{script: `o=--to-command=zzdanger; tar -xf a.tar $o`, err: "options at run time"},
		{script: `echo --to-command=zzdanger | xargs -I{} tar -xf a.tar {}`, err: "cannot"},
		{script: `git --shallow-file x -c 'alias.y=!rm -rf d' y`, runs: "rm"},
		{script: `git -c 'alias.y=-c alias.z=!zzdanger z' y`, err: "alias of a git command line"},
		{script: `git -c help.autocorrect=-1 ls-remot x`, err: "autocorrect"},
		{script: `git ls-remote --u='rm -rf d' remote.git`, runs: "rm"},
		{script: `git grep -O'rm -rf d' 1`, runs: "rm"},
		{script: `git clone -c core.sshCommand='rm -rf d' ssh://x/y cl`, runs: "rm"},
		{script: `git submodule foreach --recursive 'rm -rf d'`, runs: "rm"},
		{script: `/usr/lib/git-core/git-ls-remote --upload-pack='rm -rf d' remote.git`, runs: "rm"},
		{script: `git -c core.hooksPath=h commit`, err: "hooks"},
		{script: `GIT_SSH_COMMAND='rm -rf d' git ls-remote ssh://x/y`, runs: "rm"},
		{script: `env GIT_SSH_COMMAND='rm -rf d' git ls-remote ssh://x/y`, runs: "rm"},
		{script: `GIT_CONFIG_PARAMETERS="'alias.y'='!zzdanger'" git y`, err: "GIT_CONFIG_PARAMETERS"},
		{script: `TAR_OPTIONS=--to-command=zzdanger tar -xf a.tar`, err: "TAR_OPTIONS"},
		{script: `LESSOPEN='|rm -rf d %s' less f`, runs: "rm"},
		{script: `strace -o /dev/null -E 'BASH_FUNC_true%%=() { zzdanger; }' bash -c true`, err: "BASH_FUNC_true%%"},
		{script: `zip -TT='rm -rf d' -T x.zip f`, runs: "rm"},
		{script: `zip -qTT 'rm -rf d' -T a.zip f`, runs: "rm"},
		{script: `git grep --open-files-in-pager -O'rm -rf d' x`, runs: "rm"},
		{script: `man -H'rm -rf d' ls`, runs: "rm"},
		{script: `git -c credential.helper='!rm -rf d' fetch`, runs: "rm"},
		{script: `git -c core.quotepath=off log --oneline`, runs: "git"},
		{script: `git clone --template=/tmp/t https://x/y.git`, err: "hooks"},
		{script: `fakeroot -l /tmp/evil.so true`, err: "runs a program of its choosing"},
		{script: `ssh host "docker ps --format '{{.Names}}'" && tar czf out.tgz --exclude='*.{log,tmp}' dir`, runs: "tar"},
		// Numbers are no names, and a format no option.
		{script: `sleep 1 & wait $!; wait "$pid"; [ $# -gt 0 ] && [ $? -ne 0 ]`, err: "does not give pid only numbers"},
		{script: `pid=12; sleep 1 & wait $! "$pid"; [ $# -gt 0 ] && [ $? -ne 0 ] && [ "${#a}" -gt 0 ]; printf "Value: $x\n"`, runs: "printf"},
		{script: `i=0; [ $i -lt 10 ]`, runs: "["},
		{script: `sleep 1 & pid=$!; wait $pid; rc="$?"; [ $rc -eq 0 ]`, runs: "wait"},
		{script: `read -r x; [ $x -lt 10 ]`, err: "does not give x only numbers"},
		{script: `set -o noclobber keyword; shopt -s lastpipe keyword`, runs: "shopt"},
		{script: `time -- X=1 rm -rf v`, login: Bash, err: "NAME=VALUE as an assignment"},
	} {
		t.Run(c.script, func(t *testing.T) {
			got, err := CommandsAs(c.script, c.login)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q; commands %+v", err, c.err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			runs, input := false, false
			for _, cmd := range got {
				runs = runs || cmd.Argv[0] == c.runs
				input = input || cmd.ReadsInput
			}
			if !runs || input != c.input {
				t.Errorf("commands %+v: want %s seen, reading input %v", got, c.runs, c.input)
			}
		})
	}
	// bash reads $'\x{72}' as r, and $'\u0072' too.
	for _, line := range []string{`rm $'-\x{72}f' d1`, `rm $'-\u0072f' d1`, `rm $'-\U00000072f' d1`} {
		got, err := CommandsAs(line, Bash)
		if err != nil || len(got) != 1 || got[0].Known != 3 || got[0].Argv[1] != "-rf" {
			t.Errorf("%s: %+v %v", line, got, err)
		}
	}
	// Outside ASCII the locale decides: known only at run time.
	if got, err := CommandsAs(`rm $'-\u00e9f' d1`, Bash); err != nil || len(got) != 1 || got[0].Known != 1 {
		t.Errorf("$'\\u00e9': %+v %v", got, err)
	}
}
