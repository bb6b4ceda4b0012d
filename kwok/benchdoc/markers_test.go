package benchdoc

import (
	"strings"
	"testing"
)

func TestReplace(t *testing.T) {
	const before = "# Title\r\n\nIntro  \n\n"
	const after = "\n## Hand-written\n\ntext\tkept\n"
	doc := before + BeginMarker + "\nold\nlines\n" + EndMarker + after
	cases := []struct {
		name, doc, generated, want, wantErr string
	}{
		{name: "replaces between the markers", doc: doc, generated: "new\n",
			want: before + BeginMarker + "\nnew\n" + EndMarker + after},
		{name: "adds the missing final newline", doc: doc, generated: "new",
			want: before + BeginMarker + "\nnew\n" + EndMarker + after},
		{name: "empty section", doc: doc, generated: "",
			want: before + BeginMarker + "\n" + EndMarker + after},
		{name: "markers with blanks and CRLF", doc: "a\n  " + BeginMarker + " \r\nx\n" + EndMarker + "\r\nb",
			generated: "y\n", want: "a\n  " + BeginMarker + " \r\ny\n" + EndMarker + "\r\nb"},
		{name: "end marker last, no newline", doc: BeginMarker + "\n" + EndMarker, generated: "y\n",
			want: BeginMarker + "\ny\n" + EndMarker},
		{name: "no markers", doc: "# Title\n", wantErr: BeginMarker},
		{name: "no end marker", doc: BeginMarker + "\nx\n", wantErr: EndMarker},
		{name: "marker inside a line does not count", doc: "see " + BeginMarker + "\n" + EndMarker + "\n", wantErr: BeginMarker},
		{name: "end before begin", doc: EndMarker + "\n" + BeginMarker + "\n", wantErr: "comes before"},
		{name: "two begin markers", doc: BeginMarker + "\n" + BeginMarker + "\n" + EndMarker + "\n", wantErr: "want one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Replace(c.doc, c.generated)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

func TestReplaceTwiceIsStable(t *testing.T) {
	doc := "intro\n\n" + BeginMarker + "\nplaceholder\n" + EndMarker + "\n\nrest\n"
	once, err := Replace(doc, "generated\n")
	if err != nil {
		t.Fatal(err)
	}
	twice, err := Replace(once, "generated\n")
	if err != nil {
		t.Fatal(err)
	}
	if once != twice {
		t.Errorf("second replacement changed the document:\n%q\n%q", once, twice)
	}
}
