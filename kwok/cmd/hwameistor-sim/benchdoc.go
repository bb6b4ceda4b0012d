package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"hwameistor.io/local/kwok/benchdoc"
)

// benchdocCmd is `hwameistor-sim benchdoc`: rewrites the generated section
// of docs/benchmarks.md from the output of `make bench` (kwok/benchdoc).
func benchdocCmd(args []string) error {
	fs := flag.NewFlagSet("benchdoc", flag.ExitOnError)
	dir := fs.String("dir", "_output/bench", "folder of the reports (<scenario>-hwameistor.json, <scenario>-default.json), go-bench.txt and perf.txt")
	doc := fs.String("doc", "docs/benchmarks.md", "the Markdown document whose marked section is rewritten")
	charts := fs.String("charts", "", "where the SVG charts go (default: a bench folder beside the document)")
	pins := fs.String("pins", "", "the control-plane pins, as the cache folder is named (hack/lib.sh BIN_DIR)")
	scenarios := fs.String("scenarios", "", "space-separated scenarios to show with their -no-volumes twins (default: every one found)")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	written, err := benchdoc.Write(benchdoc.Options{Dir: *dir, Doc: *doc, ChartDir: *charts, Pins: *pins,
		Scenarios: strings.Fields(*scenarios), Now: time.Now()})
	for _, f := range written {
		fmt.Println("wrote", f)
	}
	return err
}
