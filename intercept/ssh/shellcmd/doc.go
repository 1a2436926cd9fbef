// Package shellcmd finds every command a shell command line would run, so
// each can be put to the policy.
//
// An SSH exec request carries one string that the remote login shell runs.
// Matching a policy against that string as a whole is easy to get around:
// "echo hi; rm -rf /" starts with an allowed command. Commands parses the
// string as bash does and lists every simple command in it, including the
// ones hidden in command substitutions, in function bodies, behind wrappers
// such as sudo or xargs, and in scripts handed to sh -c or eval.
//
// The package fails closed. When a command line has a part whose effect can
// only be known at run time, such as a program name held in a variable or a
// script built from one, Commands returns an error naming that part instead
// of a guess, and the caller must deny the request.
//
// # What is reported
//
// Each Command is one simple command, with its words after quote removal.
// Words that expand at run time ($X, $(...), $((...))) are kept as their
// source text; glob patterns and ~ are kept as written. Commands are listed in
// the order their names appear in the script; a wrapper comes before the
// command it runs. Declaration builtins (export, local, declare, readonly,
// typeset) and let are reported like any other command. Shell keywords
// ([[ ]], (( )), if, for, ...) are not commands, but everything inside them
// is checked.
//
// Wrappers that run their arguments as a command are reported together with
// the command they run, which carries the wrappers in Via: sudo, doas, env,
// nohup, nice, ionice, timeout, stdbuf, setsid, time, command, builtin, exec,
// xargs, chroot, flock, watch, runuser, su, busybox, jobs -x and find -exec
// / -execdir / -ok / -okdir. For wrappers whose options are not tracked one
// by one (taskset, setpriv, unshare, strace, systemd-run, script -c, ...),
// every plain word that could start the command they run is checked as its
// start.
//
// Every script, the command line and each nested one, is read twice: as
// bash reads it and as a POSIX sh (dash) does, which differ on $'...' and
// ((...)) among others. bash's reading must parse, and so must sh's of a
// script handed to sh, dash and the like by name; for the line itself, sh
// runs each command as it reads it, so its reading covers what comes
// before the first line it cannot parse. CommandsAs, for a login shell
// known to be bash, reads the line itself only as bash does; for one known
// to be a POSIX sh, it reads the line both ways and sh's reading must
// parse to the end (bash run as sh, busybox ash and mksh read $'...' as
// bash does). Commands found by either reading are reported once; Known
// and Appends say which of a command's words are only known at run time.
// Scripts passed to sh, bash, dash, zsh, ksh, mksh, ash and rbash with -c,
// to su -c, runuser -c, flock -c, watch, eval, trap and alias are parsed
// and checked in turn, up to 8 levels deep. Names are matched on
// their last path element, so /usr/bin/sudo is a wrapper too.
//
// # Limits
//
//   - Scripts longer than 64 KiB (MaxScriptBytes), scripts that run more
//     than 1000 commands (MaxCommands), scripts nested more than 8 deep
//     (MaxDepth), commands inside more than 32 wrappers and scripts
//     (MaxVia), brackets of any kind nested more than 64 deep in the line
//     or a script in it, more than 128 KiB of scripts read again, and
//     lines whose checking takes more than a bound of steps (arithmetic
//     and wrappers that guess at their command multiply it) are refused:
//     every workload on a node shares the agent's checking.
//   - A name the command line defines as an alias (alias, BASH_ALIASES) is
//     refused wherever it is used, rather than resolved; so are mapfile -C,
//     readarray -C and compgen -C callbacks, compgen -W word lists that
//     expand, enable -f, fc, declare -i and -n, prompt variables
//     (PS0-PS4, PROMPT_COMMAND) given a value built
//     at run time or read by read, printf -v or mapfile, and redirections
//     that write a file a login shell or sshd runs (~/.bashrc, ~/.ssh/rc).
//   - bash evaluates a value read in arithmetic as arithmetic, and runs the
//     command substitution of an array subscript in it. Arithmetic may read
//     only names the line gives nothing but integer literals or arithmetic
//     results (also through env or sudo), or that the shell keeps numeric;
//     positional parameters, ${!name} and a command's output are refused.
//   - Assignments of ENV, BASH_ENV, SHELLOPTS, BASHOPTS, SHELL, LD_PRELOAD,
//     bash's exported functions (BASH_FUNC_name%%) and the like, which make
//     a program run code of their choosing, are refused, on a command, in a
//     declaration, or through env and sudo.
//   - The value of an option with which a common program runs a command
//     (tar --to-command, ssh -o ProxyCommand=, rsync -e, git -c alias.x=!...,
//     git rebase -x, strace -o '|...'; see optionPrograms) is read as a
//     script, and the commands in it reported, long options also when
//     abbreviated (ssh's options after its host too, its %h tokens as words
//     known only at run time); so is the value of a variable such a program
//     runs (GIT_SSH_COMMAND, EDITOR, PAGER, LESSOPEN). Such a value made at
//     run time is refused, and so are options and variables whose command
//     cannot be read so (ssh -I and -F, git -c include.path, an alias of a
//     git command line, GIT_CONFIG_*, TAR_OPTIONS, capsh --shell), and, for
//     those programs, words braces, xargs -I or splitting may turn into
//     options. A quoted word that is all expansion ("$opt") is not seen as
//     an option, and configuration the line writes (git config alias.x)
//     is not read.
//   - Programs with command languages of their own (sed's e, vim -c, gdb
//     -ex, make --eval) are interpreters, like python -c and awk.
//   - $'...' escapes are decoded as bash decodes them (\x{HH}, \uHHHH); one
//     whose character the locale decides (outside ASCII), a control
//     character or a NUL makes the word known only at run time, and its
//     ASCII text is still looked into (a subscript in arithmetic).
//   - Where the line fails to parse as a POSIX sh at bash's &>, &>> or
//     {fd}> redirections, dash reads on: a (( )) from there, or a [[ ]]
//     with |, &, ;, parentheses or < >, which dash runs as commands, is
//     refused unless the login shell is known to be bash.
//   - A shell started without -c (bash, sh -s, bash script.sh) is reported
//     as it is; what it reads from its input or from the script file cannot
//     be seen here, so the caller must treat it as an interactive shell. The
//     same holds for sudo -s / sudo -i / su / chroot / doas -s without a
//     command, and for source / . which read a file.
//   - Only the shell interpreters above are looked into. Other interpreters
//     (python -c, perl -e, awk, fish -c, csh -c, ssh host CMD, ...) are
//     reported as one command whose arguments the policy has to judge.
//     Given no program on the line (perl, python3 -, node), the input as
//     their program (python3 /dev/stdin, awk -f -, make -f -), or a REPL
//     option or module (python3 -i, -m code, vim -es), they read one from
//     their input, and are reported as reading it, as a shell without -c
//     is; so are programs whose commands have shell escapes, reading them
//     from their input (ed, ex, sqlite3, gdb, psql, mysql).
//   - $"..." is an error: bash replaces it with a translation from a
//     message catalog, which an earlier line may have written, and
//     expands what that holds.
//   - A byte outside ASCII right before one of \ ` { } [ ] | ~ ^ @ is an
//     error where the character means something (not in single quotes;
//     in double quotes only ` and a \ that escapes): a double-byte locale
//     (Big5, Shift JIS, GBK) reads the two as one character, and the rest
//     of the line otherwise.
//   - Wrapper options are read from a table of the options each wrapper
//     knows. An option outside that table, or an option word that expands at
//     run time, is an error rather than a guess at where the command starts.
//   - find with a word that expands at run time (a variable, an unquoted
//     glob) is refused, because that word could become -exec; so is sudo -s
//     or -i with a $ in its command, which sudo's shell expands. Under xargs
//     without -I, a command whose meaning would change when xargs appends
//     the words it reads (eval, find, a wrapper without its command, a shell
//     without a -c script) is refused. Words that xargs -I or find -exec
//     replace ({}) may not be a program name or part of a script.
//   - Values of variables are not known. A variable set on a command
//     (LD_PRELOAD=..., BASH_ENV=..., PAGER=...) is not part of Argv, and
//     neither PATH nor hash -p is resolved: the policy sees the name as
//     written, so it must judge commands such as hash and export too.
//   - bash evaluates array subscripts and prompt escapes found in variable
//     values at run time, and these may run commands. Literal values that
//     carry a command substitution in an assignment (including the NAME=VALUE
//     words of env and sudo), a subscript that holds one in arithmetic, in
//     [[ ]] or in an argument of a builtin that takes variable names, and the
//     ${X@P} expansion are refused, and so is input to read or mapfile that
//     holds such a subscript; a value that arrives from the environment, a
//     file or a pipe, and a variable whose name is itself computed, cannot
//     be seen. A name a builtin takes (read NAME, printf -v NAME, test -v
//     NAME, [[ -v NAME ]], unset NAME, getopts) built at run time is
//     refused: bash evaluates the subscript of whatever name it becomes.
//     So is keyword mode (set -k, set -o keyword, bash -k), in which
//     NAME=VALUE words anywhere in a command are assignments.
//   - Terminal multiplexers (tmux, screen) run commands given as strings
//     later and are refused; at and batch read commands from their input.
//     Wrappers that start a shell without a command (script, fakeroot,
//     ssh-agent, unshare, setarch under any of its names) are reported as
//     reading input, since which of their words is the command cannot be
//     told.
package shellcmd
