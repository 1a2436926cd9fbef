package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/agent/config"
	"github.com/corral-dev/corral/policy"
)

func newPolicy() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check, test and explain policies",
	}
	cmd.AddCommand(newPolicyCheck(), newPolicyTest(), newPolicyEval())
	return cmd
}

func newPolicyCheck() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file and compile its policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return err
			}
			if _, err := policy.Compile(cmd.Context(), cfg.Policy()); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d targets, %d rules, %d policy files)\n", args[0], len(cfg.Targets), len(cfg.Rules), len(cfg.PolicyFiles))
			return nil
		},
	}
}

func newPolicyTest() *cobra.Command {
	var (
		file    string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "test DIR...",
		Short: "Run Rego tests (*_test.rego), like `opa test`, against corral's built-in module",
		Long: `Run the Rego tests found in the given directories (and files) together with
corral's built-in module and its own tests. With --config, the file's rules
are the data (data.declared) the tests run against, and its policy_files are
loaded too.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mods, err := policy.BuiltinModules(true)
			if err != nil {
				return err
			}
			data := map[string]any{}
			if file != "" {
				cfg, err := config.Load(file)
				if err != nil {
					return err
				}
				for name, src := range cfg.PolicyModules {
					mods[name] = src
				}
				data = policy.Data(cfg.Rules)
			}
			for _, a := range args {
				if err := readRego(a, mods); err != nil {
					return err
				}
			}
			return runRegoTests(cmd.Context(), cmd.OutOrStdout(), mods, data, verbose)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration file whose rules and policy files the tests use")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test")
	return cmd
}

// readRego adds the .rego files under path to into. A file identical to a
// module already there (corral's own, when pointed at its source tree) is
// skipped rather than loaded twice.
func readRego(path string, into map[string]string) error {
	have := map[string]bool{}
	for _, src := range into {
		have[src] = true
	}
	return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !have[string(b)] {
			into[p] = string(b)
		}
		return nil
	})
}

func runRegoTests(ctx context.Context, out io.Writer, sources map[string]string, data map[string]any, verbose bool) error {
	parsed := map[string]*ast.Module{}
	for name, src := range sources {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		parsed[name] = m
	}
	store := inmem.NewFromObject(map[string]any{"declared": data})
	txn := storage.NewTransactionOrDie(ctx, store)
	defer store.Abort(ctx, txn)
	ch, err := tester.NewRunner().SetModules(parsed).SetStore(store).CapturePrintOutput(true).EnableTracing(false).RunTests(ctx, txn)
	if err != nil {
		return err
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool {
		return results[i].Package+results[i].Name < results[j].Package+results[j].Name
	})
	var pass, fail int
	for _, r := range results {
		switch {
		case r.Error != nil:
			fail++
			fmt.Fprintf(out, "ERROR %s.%s: %v\n", r.Package, r.Name, r.Error)
		case r.Fail:
			fail++
			fmt.Fprintf(out, "FAIL  %s.%s (%s)\n", r.Package, r.Name, r.Location)
			if len(r.Output) > 0 {
				fmt.Fprintf(out, "%s", r.Output)
			}
		default:
			pass++
			if verbose {
				fmt.Fprintf(out, "PASS  %s.%s\n", r.Package, r.Name)
			}
		}
	}
	fmt.Fprintf(out, "%d passed, %d failed\n", pass, fail)
	if fail > 0 {
		return fmt.Errorf("%d Rego test(s) failed", fail)
	}
	if pass == 0 {
		return errors.New("no Rego tests found")
	}
	return nil
}

func newPolicyEval() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "eval --input INPUT.json FILE",
		Short: "Show the decision FILE's policy gives for an input, and the rule behind it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return err
			}
			c, err := policy.Compile(cmd.Context(), cfg.Policy())
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(input)
			if input == "-" {
				raw, err = io.ReadAll(cmd.InOrStdin())
			}
			if err != nil {
				return fmt.Errorf("--input: %w", err)
			}
			var in policy.Input
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				return fmt.Errorf("--input %s: %w", input, err)
			}
			d, evalErr := c.Eval(cmd.Context(), in)
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(d); err != nil {
				return err
			}
			rule := d.Rule
			if rule == "" {
				rule = "(no rule)"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s by %s: %s\n", d.Result, rule, d.Reason)
			return evalErr
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "the input document (JSON, as in policy/README.md); - for stdin")
	cmd.MarkFlagRequired("input")
	return cmd
}
