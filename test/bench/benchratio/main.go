// Command benchratio reads `go test -bench` output and prints, for every
// benchmark with a "baseline" sub-benchmark, the ratio of each sibling to
// it: baseline ns/op ÷ sibling ns/op, i.e. the sibling's rate as a fraction
// of the baseline's (1.00 = as fast, 0.98 = 2 % slower). Repeated runs
// (-count, or rounds named name#01, name#02 ...) are reduced to their median.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

var (
	line = regexp.MustCompile(`^(Benchmark\S+?)(?:#\d+)?(?:-\d+)?\s+\d+\s+([\d.]+) ns/op`)
	p50  = regexp.MustCompile(`\s([\d.]+) µs-p50`)
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	runs := map[string][]float64{}
	lat := map[string][]float64{} // median latencies, where reported
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return err
		}
		runs[m[1]] = append(runs[m[1]], v)
		if p := p50.FindStringSubmatch(sc.Text()); p != nil {
			v, _ := strconv.ParseFloat(p[1], 64)
			lat[m[1]] = append(lat[m[1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var names []string
	for n := range runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		i := strings.LastIndexByte(n, '/')
		if i < 0 || n[i+1:] == "baseline" {
			continue
		}
		parent, sub := n[:i], n[i+1:]
		base, ok := runs[parent+"/baseline"]
		if !ok {
			continue
		}
		b, s := median(base), median(runs[n])
		fmt.Fprintf(out, "%-40s baseline %10.0f ns/op  %-12s %10.0f ns/op  ratio %.3f", parent, b, sub, s, b/s)
		if bl, sl := lat[parent+"/baseline"], lat[n]; len(bl) > 0 && len(sl) > 0 {
			fmt.Fprintf(out, "  added p50 %+.0f µs", median(sl)-median(bl))
		}
		fmt.Fprintln(out)
	}
	return nil
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
