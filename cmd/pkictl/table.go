package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table is an aligned table. When it is wider than the terminal, its
// widest columns are narrowed and their cells wrapped (at spaces, commas,
// slashes, colons, else anywhere) as long as no column gets narrower than
// columnFloor; on a terminal narrower still, each row is printed as a
// record of "HEADER: value" lines (like psql's expanded mode), so long
// names stay whole and readable.
type table struct {
	headers []string
	rows    [][]string
	// parts, when set, are tables rendered one after the other instead.
	parts []*table
}

// gap separates columns.
const gap = "  "

// columnFloor is the narrowest a column is wrapped to in table form.
const columnFloor = 20

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// render writes t fitted to width (0: no limit).
func (t *table) render(w io.Writer, width int) {
	for i, p := range t.parts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		p.render(w, width)
	}
	if t.parts != nil {
		return
	}
	n := len(t.headers)
	widths := make([]int, n)
	for i, h := range t.headers {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i := range n {
			widths[i] = max(widths[i], longestLine(cell(r, i)))
		}
	}
	if width > 0 && !fit(widths, width-len(gap)*(n-1)) {
		t.records(w, width)
		return
	}
	t.line(w, widths, t.headers)
	sep := make([]string, n)
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	t.line(w, widths, sep)
	for _, r := range t.rows {
		t.line(w, widths, r)
	}
}

// fit narrows the widest columns until they add up to total, none below
// columnFloor (or its natural width when narrower); false when that is
// not enough.
func fit(widths []int, total int) bool {
	sum, floors := 0, 0
	for _, x := range widths {
		sum += x
		floors += min(x, columnFloor)
	}
	if floors > total {
		return false
	}
	for sum > total {
		widest := 0
		for i, x := range widths {
			if x > widths[widest] {
				widest = i
			}
		}
		widths[widest]--
		sum--
	}
	return true
}

// records prints each row as a block of header: value lines.
func (t *table) records(w io.Writer, width int) {
	for i, r := range t.rows {
		if i > 0 {
			fmt.Fprintln(w)
		}
		f := &fields{}
		for j, h := range t.headers {
			f.add(h, cell(r, j))
		}
		f.render(w, width)
	}
}

// line writes one row, its cells wrapped to the column widths.
func (t *table) line(w io.Writer, widths []int, cells []string) {
	wrapped := make([][]string, len(widths))
	height := 1
	for i, wd := range widths {
		wrapped[i] = wrap(cell(cells, i), wd)
		height = max(height, len(wrapped[i]))
	}
	for l := range height {
		var b strings.Builder
		for i, wd := range widths {
			s := ""
			if l < len(wrapped[i]) {
				s = wrapped[i][l]
			}
			if i == len(widths)-1 {
				b.WriteString(s)
				break
			}
			fmt.Fprintf(&b, "%s%s%s", s, strings.Repeat(" ", wd-utf8.RuneCountInString(s)), gap)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func cell(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

func longestLine(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		n = max(n, utf8.RuneCountInString(l))
	}
	return n
}

// wrap breaks s into lines of at most width runes, after a space, comma,
// slash or colon when one is in the second half of the line, else hard.
func wrap(s string, width int) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		r := []rune(para)
		for len(r) > width {
			cut := width
			for j := width; j > width/2; j-- {
				if strings.ContainsRune(" ,/:=", r[j-1]) {
					cut = j
					break
				}
			}
			out = append(out, strings.TrimRight(string(r[:cut]), " "))
			r = []rune(strings.TrimLeft(string(r[cut:]), " "))
		}
		out = append(out, string(r))
	}
	return out
}

// fields is a detail view: headings, and labels with values wrapped to
// the terminal under their own column (like IOS XR's show crypto ca
// certificates).
type fields struct {
	rows []fieldRow
}

type fieldRow struct {
	label, value string
	heading      bool
}

func (f *fields) add(label, value string) {
	f.rows = append(f.rows, fieldRow{label: label, value: value})
}

func (f *fields) heading(text string) { f.rows = append(f.rows, fieldRow{value: text, heading: true}) }

func (f *fields) render(w io.Writer, width int) {
	lw := 0
	for _, r := range f.rows {
		lw = max(lw, utf8.RuneCountInString(r.label))
	}
	for _, r := range f.rows {
		if r.heading {
			if width > 0 {
				fmt.Fprintln(w, strings.Join(wrap(r.value, width), "\n  "))
			} else {
				fmt.Fprintln(w, r.value)
			}
			continue
		}
		var lines []string
		if width > 0 {
			lines = wrap(r.value, max(width-lw-5, 20))
		} else {
			lines = strings.Split(r.value, "\n")
		}
		for i, l := range lines {
			label, sep := r.label, ":"
			if i > 0 {
				label, sep = "", " "
			}
			fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-*s%s %s", lw, label, sep, l), " "))
		}
	}
}
