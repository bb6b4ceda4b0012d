package benchdoc

import (
	"fmt"
	"strings"
)

// The generated section of the document lies between these two lines;
// everything outside them is hand-written and kept byte for byte.
const (
	BeginMarker = "<!-- BEGIN make bench -->"
	EndMarker   = "<!-- END make bench -->"
)

// Replace returns doc with the lines between BeginMarker and EndMarker
// replaced by generated. Each marker must appear once, on a line of its
// own, the begin marker first: a document without them is an error rather
// than a silent append, so a hand-written section is never overwritten.
func Replace(doc, generated string) (string, error) {
	begin, err := markerLine(doc, BeginMarker)
	if err != nil {
		return "", err
	}
	end, err := markerLine(doc, EndMarker)
	if err != nil {
		return "", err
	}
	if end.start < begin.end {
		return "", fmt.Errorf("%q comes before %q", EndMarker, BeginMarker)
	}
	if generated != "" && !strings.HasSuffix(generated, "\n") {
		generated += "\n"
	}
	return doc[:begin.end] + generated + doc[end.start:], nil
}

// span is a line of the document: start is its first byte, end is just
// past its newline (or the end of the document).
type span struct{ start, end int }

// markerLine finds the only line holding marker alone (surrounding blanks
// and a CR allowed).
func markerLine(doc, marker string) (span, error) {
	var found []span
	for start := 0; start < len(doc); {
		end := strings.IndexByte(doc[start:], '\n')
		if end < 0 {
			end = len(doc)
		} else {
			end += start + 1
		}
		if strings.TrimSpace(doc[start:end]) == marker {
			found = append(found, span{start, end})
		}
		start = end
	}
	switch len(found) {
	case 0:
		return span{}, fmt.Errorf("the document has no line %q: add the lines %q and %q where the generated section goes", marker, BeginMarker, EndMarker)
	case 1:
		return found[0], nil
	default:
		return span{}, fmt.Errorf("the document has %d lines %q, want one", len(found), marker)
	}
}
