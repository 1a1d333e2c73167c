// Package texttable renders the ASCII tables of a8ctl and of resilience check results, as
// Amalgam8's a8ctl printed them (PrettyTable in 0.x, its own in 1.x), cells left-aligned:
//
//	+---------+-----------------+
//	| Service | Default Version |
//	+---------+-----------------+
//	| reviews | version=v1      |
//	+---------+-----------------+
package texttable

import (
	"strings"
	"unicode/utf8"
)

// Render returns the table of header and rows; a row shorter than the header gets empty cells.
func Render(header []string, rows [][]string) string {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range rows {
		for i := range header {
			if i < len(r) {
				widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
			}
		}
	}
	var b strings.Builder
	border := func() {
		b.WriteByte('+')
		for _, n := range widths {
			b.WriteString(strings.Repeat("-", n+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(cells []string) {
		b.WriteByte('|')
		for i, n := range widths {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			b.WriteByte(' ')
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", n-utf8.RuneCountInString(c)))
			b.WriteString(" |")
		}
		b.WriteByte('\n')
	}
	border()
	line(header)
	border()
	for _, r := range rows {
		line(r)
	}
	if len(rows) > 0 {
		border()
	}
	return b.String()
}
