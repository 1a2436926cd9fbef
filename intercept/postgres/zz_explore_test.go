package postgres

import (
	"bufio"
	"fmt"
	"os"
	"testing"
)

func TestZZExplore(t *testing.T) {
	f, err := os.Open("/tmp/explore/in.sql")
	if err != nil {
		t.Skip()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		st, err := Classify(line)
		fmt.Printf("%s\n", line)
		if err != nil {
			fmt.Printf("   ERR %v\n", err)
			continue
		}
		for _, s := range st {
			fmt.Printf("   ops=%q cmd=%q tables=%q fn=%q where=%v copyout=%v lit=%v prep=%q exec=%q deal=%q all=%v text=%q\n", s.Ops, s.Command, s.Tables, s.Functions, s.HasWhere, s.CopyOut, s.literalSensitive, s.Prepares, s.Executes, s.Deallocates, s.DeallocateAll, s.Text)
			for _, r := range s.refs {
				fmt.Printf("      ref %+v\n", r)
			}
			fmt.Printf("      aliases %v\n", s.aliases)
		}
	}
}
