package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{
		{0, 0, "import x  0 B"},
		{1536, 0, "import x  1.5 KiB"},
		{5 << 20, 20 << 20, "import x  5.0 MiB / 20.0 MiB  25%"},
		{3 << 30, 3 << 30, "import x  3.0 GiB / 3.0 GiB  100%"},
		{30, 20, "import x  30 B / 20 B  100%"},
	} {
		if got := Line("import x", c.done, c.total); got != c.want {
			t.Errorf("Line(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

// Off a terminal a bar writes nothing: a pipe gets the command's output
// alone.
func TestQuietOffTerminal(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "import x", 10)
	if _, err := io.Copy(io.Discard, b.Reader(strings.NewReader("0123456789"))); err != nil {
		t.Fatal(err)
	}
	b.Done()
	if out.Len() != 0 {
		t.Errorf("a bar wrote %q to a buffer", out.String())
	}
}

// On a terminal the line is redrawn in place at most every 100 ms, and
// Done ends it.
func TestRedraw(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	b := &Bar{w: &out, label: "import x", total: 100, now: func() time.Time { return now }}
	b.Add(10) // first: drawn
	b.Add(10) // 0 ms later: not drawn
	now = now.Add(150 * time.Millisecond)
	b.Add(30)
	b.Done()
	want := "\rimport x  10 B / 100 B  10%\x1b[K" + "\rimport x  50 B / 100 B  50%\x1b[K" + "\rimport x  50 B / 100 B  50%\x1b[K\n"
	if out.String() != want {
		t.Errorf("drawn %q\nwant  %q", out.String(), want)
	}
}
