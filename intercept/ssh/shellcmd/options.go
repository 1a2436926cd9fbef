package shellcmd

import (
	"fmt"
	"slices"
	"strings"
)

// An option's value that a program runs as a command (tar --to-command,
// ssh -o ProxyCommand=, git -c alias.x='!cmd', strace -o '|cmd') is read
// as a script, and each command in it checked, as a wrapper's command is.
// A value made at run time is refused, and so are options whose command
// cannot be read that way (a library to load, a config file to include).

// programOptions describes one program's options: those that take a
// value (short letters, long names), and what the value of each means.
type programOptions struct {
	// short are the short options that take a value; long, the long ones.
	short string
	long  []string
	// command returns, for an option (a short letter as "-x", a long name
	// as "--name") and its value, the script the program runs from it;
	// refuse is why the value cannot be read so.
	command func(opt, value string) (script, refuse string)
	// operands: the program's first operand ends its options, and what
	// follows is not its own (ssh's remote command, git's subcommand).
	operands bool
	// carries are the options whose value may be a command; a value made
	// at run time is refused for them (nil: every option above).
	carries []string
	// flags are long options that take no value but abbreviate one that
	// does (tar --checkpoint, --checkpoint-action); optional, the short
	// options whose value, if any, is attached (git grep -O[pager]).
	flags    []string
	optional string
	// optionalLong are long options whose value, if any, follows "=".
	optionalLong []string
	// again: options go on after the first operand, up to the second
	// (ssh host -oProxyCommand=... cmd).
	again bool
}

func (p *programOptions) carriesCommand(opt string) bool {
	return p.carries == nil || slices.Contains(p.carries, opt)
}

// whole returns the script in a value that is a command line.
func whole(_, value string) (string, string) { return value, "" }

var optionPrograms = map[string]*programOptions{
	"tar": {
		short: "bCfFgHIKLNTVX", long: []string{"--to-command", "--checkpoint-action", "--use-compress-program", "--info-script",
			"--new-volume-script", "--rsh-command", "--rmt-command", "--file", "--directory"},
		flags: []string{"--checkpoint"},
		carries: []string{"-I", "-F", "--to-command", "--checkpoint-action", "--use-compress-program", "--info-script",
			"--new-volume-script", "--rsh-command", "--rmt-command"},
		command: func(opt, v string) (string, string) {
			switch opt {
			case "-I", "-F", "--to-command", "--use-compress-program", "--info-script", "--new-volume-script", "--rsh-command", "--rmt-command":
				return v, ""
			case "--checkpoint-action":
				if cmd, ok := strings.CutPrefix(v, "exec="); ok {
					if strings.ContainsAny(cmd, `"'\`) {
						// tar takes quotes out of it before the shell
						// reads it.
						return "", "--checkpoint-action=exec= with quotes, which tar reads its own way"
					}
					return cmd, ""
				}
			}
			return "", ""
		},
	},
	"ssh":  {short: "BbcDEeFIiJLlmOopQRSWw", operands: true, again: true, command: sshOption, carries: []string{"-o", "-I", "-F"}},
	"scp":  {short: "cDFiJloPSX", command: scpOption, carries: []string{"-o", "-S", "-D", "-F"}},
	"sftp": {short: "BbcDFiJloPRSsX", command: scpOption, carries: []string{"-o", "-S", "-D", "-F"}},
	"rsync": {short: "eBfT", long: []string{"--rsh", "--rsync-path"}, carries: []string{"-e", "--rsh", "--rsync-path"},
		command: func(opt, v string) (string, string) {
			if opt == "-e" || opt == "--rsh" || opt == "--rsync-path" {
				return v, ""
			}
			return "", ""
		}},
	"git": {short: "Cc", long: []string{"--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env", "--super-prefix",
		"--shallow-file", "--list-cmds", "--attr-source"},
		operands: true, command: gitOption, carries: []string{"-c", "--exec-path", "--config-env"}},
	"strace": {short: "abeEIoOpPsSuUX", long: []string{"--output", "--env"}, carries: []string{"-o", "--output", "-E", "--env"},
		command: func(opt, v string) (string, string) {
			if opt == "-E" || opt == "--env" {
				return envValue(v)
			}
			if opt == "-o" || opt == "--output" {
				if cmd, ok := strings.CutPrefix(v, "|"); ok {
					return cmd, ""
				}
				if cmd, ok := strings.CutPrefix(v, "!"); ok {
					return cmd, ""
				}
			}
			return "", ""
		}},
	"split":   {long: []string{"--filter"}, command: whole},
	"sort":    {long: []string{"--compress-program"}, command: whole},
	"install": {long: []string{"--strip-program"}, command: whole},
	"sdiff":   {long: []string{"--diff-program"}, command: whole},
	"diff3":   {long: []string{"--diff-program"}, command: whole},
	"wget":    {long: []string{"--use-askpass"}, command: whole},
	"zip":     {long: []string{"--unzip-command"}, command: whole}, // and -TT, read below
	"man":     {short: "P", long: []string{"--pager"}, optional: "H", optionalLong: []string{"--html"}, command: whole},
	"capsh":   {long: []string{"--shell"}, command: refuseAll},
	"fakeroot": {short: "lfis", long: []string{"--faked", "--lib"}, carries: []string{"-l", "-f", "--faked", "--lib"},
		command: func(opt, v string) (string, string) {
			if opt == "-i" || opt == "-s" {
				return "", "" // state files
			}
			return refuseAll(opt, v)
		}},
	"start-stop-daemon": {command: refuseAll},
}

func refuseTemplate(opt, _ string) (string, string) {
	return "", opt + " copies hooks of its choosing, which git then runs"
}

func refuseAll(opt, _ string) (string, string) {
	return "", opt + " runs a program of its choosing"
}

// scpOption reads scp's and sftp's: -S, the ssh they run, and -D, an
// sftp server run in its place, besides ssh's.
func scpOption(opt, v string) (string, string) {
	if opt == "-S" || opt == "-D" {
		return v, ""
	}
	return sshOption(opt, v)
}

// sshOption reads ssh's -o NAME=VALUE (or NAME VALUE), -I and -F.
func sshOption(opt, v string) (string, string) {
	switch opt {
	case "-I":
		return "", "-I loads a library"
	case "-F":
		return "", "-F reads options, ProxyCommand among them, from a file"
	case "-o":
	default:
		return "", ""
	}
	// ssh takes quotes out of the name, and a leading =.
	v = strings.TrimLeft(strings.TrimSpace(v), "= \t")
	end := strings.IndexFunc(v, func(r rune) bool { return r == '=' || r == ' ' || r == '\t' })
	key, value := v, ""
	if end >= 0 {
		key, value = v[:end], strings.TrimLeft(v[end:], "= \t")
	}
	switch strings.ToLower(strings.ReplaceAll(key, `"`, "")) {
	case "proxycommand", "localcommand", "knownhostscommand", "remotecommand":
		return sshTokens(value), ""
	case "pkcs11provider", "securitykeyprovider":
		return "", "-o " + key + " loads a library"
	case "match", "include":
		return "", "-o " + key + " reads commands from elsewhere"
	}
	return "", ""
}

// sshTokens makes ssh's %h, %r, %n and the like, which it replaces with
// the host, user or port the command line gives, words known only at run
// time: `ProxyCommand=%h -rf d` with host rm runs rm.
func sshTokens(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+1 < len(v) {
			if v[i+1] == '%' {
				b.WriteString("%")
			} else {
				b.WriteString("${ssh_token_" + string(v[i+1]) + "}")
			}
			i++
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// envValue reads NAME=VALUE as given to a program's environment (strace
// -E): a variable that runs code is refused, one whose value is a command
// is read as a script.
func envValue(v string) (string, string) {
	name, value, _ := strings.Cut(v, "=")
	if codeVar(name) {
		return "", name + " makes the program run code of its choosing"
	}
	if commandVar(name) {
		return strings.TrimPrefix(value, "|"), ""
	}
	return "", ""
}

// gitKeys are the ends of the names of configuration keys whose value git
// runs as a command.
var gitKeys = []string{"command", "cmd", "program", "editor", "pager", "helper", "driver", "fsmonitor", "external", "clean",
	"smudge", "process", "gitproxy", "askpass", "packobjectshook", "difffilter", "uploadpack", "receivepack", "sshcommand",
	"textconv", "tunnel"}

// gitOption reads git's -c KEY=VALUE and its global options.
func gitOption(opt, v string) (string, string) {
	switch opt {
	case "--exec-path":
		return "", "--exec-path changes where git finds the programs it runs"
	case "--config-env":
		return "", "--config-env takes a configuration value from the environment"
	case "-c":
	default:
		return "", ""
	}
	key, value, _ := strings.Cut(v, "=")
	key = strings.ToLower(key)
	switch {
	case strings.HasPrefix(key, "alias."):
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(value), "!"); ok {
			return cmd, ""
		}
		// Another git command line, with options of its own.
		return "", "-c " + key + " makes an alias of a git command line, which is not read"
	case key == "help.autocorrect":
		return "", "-c help.autocorrect runs a subcommand other than the one written"
	case key == "core.hookspath":
		return "", "-c core.hooksPath runs the hooks of a directory of its choosing"
	case strings.HasPrefix(key, "include.") || strings.HasPrefix(key, "includeif.") || strings.HasPrefix(key, "protocol."):
		return "", "-c " + key + " reads configuration, or allows transports, from elsewhere"
	case strings.HasPrefix(key, "pager."),
		strings.HasSuffix(key, ".path") && (strings.HasPrefix(key, "difftool.") || strings.HasPrefix(key, "mergetool.") || strings.HasPrefix(key, "man.")),
		strings.HasPrefix(key, "submodule.") && strings.HasSuffix(key, ".update"):
		return strings.TrimPrefix(strings.TrimSpace(value), "!"), ""
	}
	for _, end := range gitKeys {
		if strings.HasSuffix(key, end) {
			// credential.helper='!cmd' runs cmd.
			return strings.TrimPrefix(strings.TrimSpace(value), "!"), ""
		}
	}
	return "", ""
}

// gitSubcommands are git's subcommands with options whose value is a
// command, or that run the words after them (bisect run, submodule
// foreach).
var gitSubcommands = map[string]*programOptions{
	"rebase":     {long: []string{"--exec"}, short: "x", command: whole},
	"difftool":   {long: []string{"--extcmd"}, short: "x", command: whole},
	"grep":       {optionalLong: []string{"--open-files-in-pager"}, optional: "O", command: whole},
	"fetch":      {long: []string{"--upload-pack"}, command: whole},
	"fetch-pack": {long: []string{"--upload-pack", "--exec"}, command: whole},
	"pull":       {long: []string{"--upload-pack"}, command: whole},
	"clone": {long: []string{"--upload-pack", "--config", "--template"}, short: "uc", command: func(opt, v string) (string, string) {
		switch opt {
		case "-c", "--config":
			return gitOption("-c", v)
		case "--template":
			return refuseTemplate(opt, v)
		}
		return v, ""
	}},
	"ls-remote":  {long: []string{"--upload-pack"}, command: whole},
	"send-email": {long: []string{"--to-cmd", "--cc-cmd", "--sendmail-cmd", "--smtp-server"}, command: whole},
	"instaweb":   {long: []string{"--httpd"}, short: "d", command: whole},
	"daemon":     {long: []string{"--access-hook"}, command: whole},
	"init":       {long: []string{"--template"}, command: refuseTemplate},
	"archive":    {long: []string{"--exec"}, command: whole},
	"push":       {long: []string{"--receive-pack", "--exec"}, command: whole},
	"send-pack":  {long: []string{"--receive-pack", "--exec"}, command: whole},
}

// optionCommands checks the options of programOptions' programs.
func (w *walker) optionCommands(name string, args []arg, c ctx) error {
	if name == "slogin" {
		name = "ssh"
	}
	if sub, ok := strings.CutPrefix(name, "git-"); ok {
		// /usr/lib/git-core/git-ls-remote: a subcommand by its own name.
		name, args = "git", append([]arg{args[0], {text: sub, src: sub, lit: true, plain: true, single: true}}, args[1:]...)
	}
	p, ok := optionPrograms[name]
	if !ok {
		return nil
	}
	if err := refuseOpen(args, c); err != nil {
		return err // words xargs appends may be options
	}
	rest, err := w.scanOptions(name, p, args, 1, c)
	if err != nil || name != "git" || len(rest) == 0 {
		return err
	}
	// The subcommand's own.
	sub := rest[0]
	switch sub.text {
	case "bisect":
		if len(rest) > 1 && rest[1].text == "run" {
			return w.wrapped(args, rest[2:], c)
		}
	case "submodule", "submodule--helper":
		for i, a := range rest {
			if a.plain && a.text == "foreach" {
				script := rest[i+1:]
				for len(script) > 0 && script[0].plain && strings.HasPrefix(script[0].text, "-") {
					script = script[1:] // --recursive, -q
				}
				return w.joinedScript(append([]arg{sub}, script...), c)
			}
		}
	case "filter-branch", "remote-ext":
		return fmt.Errorf("cannot check `git %s`: it runs commands given as strings", sub.text)
	}
	if sp, ok := gitSubcommands[sub.text]; ok {
		_, err := w.scanOptions("git "+sub.text, sp, rest, 1, c)
		return err
	}
	return nil
}

// joinedScript reads the words after args[0] joined as one script, as
// git submodule foreach runs them.
func (w *walker) joinedScript(args []arg, c ctx) error {
	parts := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		if !a.plain {
			return builtAtRunTime(a)
		}
		parts = append(parts, a.text)
	}
	return w.script(strings.Join(parts, " "), c, args[0].text)
}

// scanOptions walks a program's options from args[from], checking each
// value p.command reads as a command, and returns the words from the
// first operand on when the program stops there (p.operands), or nil.
func (w *walker) scanOptions(name string, p *programOptions, args []arg, from int, c ctx) ([]arg, error) {
	// check reads opt's value: attached to it (--opt=VALUE, -oVALUE), or
	// the next word.
	check := func(opt string, attached *string, next arg) error {
		v := ""
		if attached != nil {
			v = *attached
		} else if next.plain {
			v = next.text
		} else {
			if p.carriesCommand(opt) {
				return fmt.Errorf("cannot check `%s %s %s`: its value is made at run time", name, opt, next.src)
			}
			return nil
		}
		script, refuse := p.command(opt, v)
		if refuse != "" {
			return fmt.Errorf("cannot check `%s`: %s", name, refuse)
		}
		if script == "" {
			return nil
		}
		return w.script(script, c, name+" "+opt)
	}
	operands := 0
	for i := from; i < len(args); i++ {
		a := args[i]
		if a.filled || !a.single {
			// Braces make words of their own, xargs -I puts its input
			// in, and an unquoted expansion splits: options among them.
			return nil, fmt.Errorf("cannot check `%s %s`: it may become options at run time", name, a.src)
		}
		if !a.plain {
			if strings.HasPrefix(a.lits, "-") {
				return nil, fmt.Errorf("cannot check `%s %s`: an option made at run time", name, a.src)
			}
			if p.operands {
				if operands++; !p.again || operands > 1 {
					return args[i:], nil
				}
			}
			continue
		}
		t := a.text
		switch {
		case t == "--":
			if p.operands {
				return args[i+1:], nil
			}
		case name == "zip" && strings.HasPrefix(t, "-") && !strings.HasPrefix(t, "--") && strings.Contains(t, "TT"):
			if v := strings.TrimPrefix(t[strings.Index(t, "TT")+2:], "="); v != "" {
				if err := check("-TT", &v, arg{}); err != nil {
					return nil, err
				}
			} else if i+1 < len(args) {
				i++
				if err := check("-TT", nil, args[i]); err != nil {
					return nil, err
				}
			}
		case strings.HasPrefix(t, "--"):
			n, v, hasValue := strings.Cut(t, "=")
			if slices.Contains(p.flags, n) {
				continue
			}
			if opt := longOption(n, p.optionalLong); opt != "" {
				if hasValue {
					if err := check(opt, &v, arg{}); err != nil {
						return nil, err
					}
				}
				continue
			}
			opt := longOption(n, p.long)
			if opt == "" {
				if p.command != nil && len(p.long) == 0 && len(p.short) == 0 {
					if _, refuse := p.command(n, v); refuse != "" {
						return nil, fmt.Errorf("cannot check `%s`: %s", name, refuse)
					}
				}
				continue
			}
			if hasValue {
				if err := check(opt, &v, arg{}); err != nil {
					return nil, err
				}
				continue
			}
			if i+1 < len(args) {
				i++
				if err := check(opt, nil, args[i]); err != nil {
					return nil, err
				}
			}
		case strings.HasPrefix(t, "-") && t != "-":
			if len(p.short) == 0 && len(p.long) == 0 {
				// Any option at all (start-stop-daemon).
				if _, refuse := p.command(t, ""); refuse != "" {
					return nil, fmt.Errorf("cannot check `%s`: %s", name, refuse)
				}
			}
			for j := 1; j < len(t); j++ {
				if strings.ContainsRune(p.optional, rune(t[j])) {
					if v := t[j+1:]; v != "" {
						if err := check("-"+t[j:j+1], &v, arg{}); err != nil {
							return nil, err
						}
					}
					break
				}
				if !strings.ContainsRune(p.short, rune(t[j])) {
					continue
				}
				opt, v := "-"+t[j:j+1], t[j+1:]
				if v != "" {
					if err := check(opt, &v, arg{}); err != nil {
						return nil, err
					}
				} else if i+1 < len(args) {
					i++
					if err := check(opt, nil, args[i]); err != nil {
						return nil, err
					}
				}
				break
			}
		default:
			if name == "tar" && i == 1 {
				// Old-style letters (tar xIf CMD a.tar): their values
				// come in the words after, in order, whatever they
				// look like.
				if strings.ContainsAny(t, "IF") {
					return nil, fmt.Errorf("cannot check `tar %s`: write its options with dashes", t)
				}
				for _, l := range t {
					if strings.ContainsRune(p.short, l) {
						i++
					}
				}
				continue
			}
			if p.operands {
				if operands++; !p.again || operands > 1 {
					return args[i:], nil
				}
			}
		}
	}
	return nil, nil
}

// longOption returns which of long a word names, whole or abbreviated as
// getopt_long takes them (a unique prefix), or "".
func longOption(word string, long []string) string {
	if slices.Contains(long, word) {
		return word
	}
	found := ""
	for _, l := range long {
		if len(word) > 2 && strings.HasPrefix(l, word) {
			if found != "" {
				return "" // ambiguous: the program refuses it
			}
			found = l
		}
	}
	return found
}
