package framing

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func readAll(r *Reader) ([]string, error) {
	var out []string
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return out, err
		}
		out = append(out, string(m))
	}
}

func TestReadEOM(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{desc: "one", in: "<a/>]]>]]>", want: []string{"<a/>"}, wantErr: io.EOF},
		{desc: "two with newline", in: "<a/>]]>]]>\n<b/>]]>]]>\n", want: []string{"<a/>", "<b/>"}, wantErr: io.EOF},
		{desc: "go-netconf padding", in: "<a/>      ]]>]]>\n", want: []string{"<a/>"}, wantErr: io.EOF},
		{desc: "delimiter after ]]>", in: "a]]>]]>]]>b]]>]]>", want: []string{"a", "]]>b"}, wantErr: io.EOF},
		{desc: "blank message skipped", in: "\n ]]>]]><a/>]]>]]>", want: []string{"<a/>"}, wantErr: io.EOF},
		{desc: "delimiter split by buffer", in: strings.Repeat("x", 64<<10-3) + "]]>]]>", want: []string{strings.Repeat("x", 64<<10-3)}, wantErr: io.EOF},
		{desc: "truncated", in: "<a/>]]>]]", wantErr: io.ErrUnexpectedEOF},
		{desc: "only whitespace at end", in: "<a/>]]>]]>\n\n  ", want: []string{"<a/>"}, wantErr: io.EOF},
		{desc: "at limit", in: "12345]]>]]>", max: 5, want: []string{"12345"}, wantErr: io.EOF},
		{desc: "over limit", in: "123456]]>]]>", max: 5, wantErr: ErrMessageTooBig},
		{desc: "over limit without delimiter", in: strings.Repeat("x", 20000), max: 5, wantErr: ErrMessageTooBig},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for _, src := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(NewReader(src, tc.max))
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ReadMessage error = %v, want %v", err, tc.wantErr)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("messages (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestReadChunked(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{desc: "RFC 6242 example", in: "\n#4\n<rpc\n#18\n message-id=\"102\"\n\n#79\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>\n##\n",
			want: []string{"<rpc message-id=\"102\"\n     xmlns=\"urn:ietf:params:xml:ns:netconf:base:1.0\">\n  <close-session/>\n</rpc>"}, wantErr: io.EOF},
		{desc: "two messages", in: "\n#3\nabc\n##\n\n#1\nd\n##\n", want: []string{"abc", "d"}, wantErr: io.EOF},
		{desc: "newline after hello delimiter", in: "\n\n#3\nabc\n##\n", want: []string{"abc"}, wantErr: io.EOF},
		{desc: "max chunk size digits", in: "\n#4294967295\nab", wantErr: ErrMessageTooBig},
		{desc: "chunk size over max", in: "\n#4294967296\nab", wantErr: ErrBadChunk},
		{desc: "eleven digits", in: "\n#10000000000\n", wantErr: ErrBadChunk},
		{desc: "zero chunk", in: "\n#0\n\n##\n", wantErr: ErrBadChunk},
		{desc: "leading zero", in: "\n#03\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "no LF before hash", in: "#3\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "space before hash", in: "\n #3\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "letters", in: "\n#abc\n", wantErr: ErrBadChunk},
		{desc: "sign", in: "\n#+3\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "CR in header", in: "\n#3\r\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "end before chunk", in: "\n##\n", wantErr: ErrBadChunk},
		{desc: "short chunk", in: "\n#5\nabc\n##\n", wantErr: ErrBadChunk},
		{desc: "half a chunk then EOF", in: "\n#10\nabc", wantErr: io.ErrUnexpectedEOF},
		{desc: "garbage between chunks", in: "\n#3\nabcX\n##\n", wantErr: ErrBadChunk},
		{desc: "end marker without LF", in: "\n#3\nabc\n##", wantErr: io.ErrUnexpectedEOF},
		{desc: "over limit across chunks", in: "\n#3\nabc\n#3\ndef\n##\n", max: 5, wantErr: ErrMessageTooBig},
		{desc: "at limit across chunks", in: "\n#3\nabc\n#2\nde\n##\n", max: 5, want: []string{"abcde"}, wantErr: io.EOF},
		{desc: "eom in chunked mode", in: "<a/>]]>]]>", wantErr: ErrBadChunk},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), tc.max)
			r.SetChunked()
			got, err := readAll(r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadMessage error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSwitchAfterHello(t *testing.T) {
	r := NewReader(strings.NewReader("<hello/>]]>]]>\n#5\n<rpc/\n#1\n>\n##\n"), 0)
	m, err := r.ReadMessage()
	if err != nil || string(m) != "<hello/>" {
		t.Fatalf("hello = %q, %v", m, err)
	}
	r.SetChunked()
	m, err = r.ReadMessage()
	if err != nil || string(m) != "<rpc/>" {
		t.Fatalf("rpc = %q, %v", m, err)
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		chunked bool
		msg     string
		want    string
		wantErr error
	}{
		{desc: "eom", msg: "<ok/>", want: "<ok/>]]>]]>"},
		{desc: "eom with delimiter", msg: "a]]>]]>b", wantErr: ErrDelimiterInMessage},
		{desc: "chunked", chunked: true, msg: "<ok/>", want: "\n#5\n<ok/>\n##\n"},
		{desc: "chunked empty", chunked: true, msg: "", wantErr: ErrEmptyMessage},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var buf countingWriter
			w := NewWriter(&buf)
			if tc.chunked {
				w.SetChunked()
			}
			err := w.WriteMessage([]byte(tc.msg))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteMessage error = %v, want %v", err, tc.wantErr)
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("wrote %q, want %q", got, tc.want)
			}
			if tc.wantErr == nil && buf.writes != 1 {
				t.Errorf("%d writes, want 1", buf.writes)
			}
		})
	}
}

// checkRoundTrip writes each message back in the same mode and reads it again.
func checkRoundTrip(t *testing.T, msgs [][]byte, chunked bool) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if chunked {
		w.SetChunked()
	}
	for _, m := range msgs {
		if err := w.WriteMessage(m); err != nil {
			t.Fatalf("WriteMessage(%q): %v", m, err)
		}
	}
	r := NewReader(&buf, 0)
	if chunked {
		r.SetChunked()
	}
	for _, m := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("re-read %q: %v", m, err)
		}
		if !bytes.Equal(got, m) {
			t.Fatalf("re-read %q, want %q", got, m)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("after last message: %v, want EOF", err)
	}
}

func fuzzRead(t *testing.T, data []byte, chunked bool) {
	const limit = 1 << 12
	r := NewReader(bytes.NewReader(data), limit)
	if chunked {
		r.SetChunked()
	}
	var msgs [][]byte
	for {
		m, err := r.ReadMessage()
		if err != nil {
			break
		}
		if len(m) == 0 || len(m) > limit {
			t.Fatalf("message of %d bytes (limit %d)", len(m), limit)
		}
		if !chunked && (bytes.Contains(m, eom) || len(bytes.TrimSpace(m)) != len(m)) {
			t.Fatalf("EOM message %q holds the delimiter or surrounding space", m)
		}
		if !chunked && bytes.HasSuffix(m, eom[:3]) {
			continue // the Writer refuses it: it cannot be framed with EOM
		}
		msgs = append(msgs, m)
	}
	checkRoundTrip(t, msgs, chunked)
}

func FuzzEOMReader(f *testing.F) {
	for _, s := range []string{"<a/>]]>]]>", "<a/>  ]]>]]>\n<b/>]]>]]>", "]]>]]]>]]>]]>", " \n]]>]]>x", "]]>]>]]>]]>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, data, false) })
}

func FuzzChunkedReader(f *testing.F) {
	for _, s := range []string{"\n#3\nabc\n##\n", "\n#1\na\n#2\nbc\n##\n\n#1\nz\n##\n", "\n#0\n", "\n#4294967295\n", "\n\n#2\nab\n##\n", "\n#9\nab"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, data, true) })
}
