package resilience

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/a8fabric/a8/api"
)

// Summary renders results as a8ctl recipe-run's table: Assertion | Source | Destination | Result
// (PASS or FAIL) | Error, one row per result. A bulkhead's destination is its slow_dest; an
// assertion without source or dest shows "*".
//
//	+-------------+------------------------+--------------------+--------+-----------------------------------+
//	| Assertion   | Source                 | Destination        | Result | Error                             |
//	+-------------+------------------------+--------------------+--------+-----------------------------------+
//	| http_status | productpage:version=v1 | reviews:version=v2 | FAIL   | unexpected connection termination |
//	+-------------+------------------------+--------------------+--------+-----------------------------------+
func Summary(results []api.CheckResult) string {
	header := []string{"Assertion", "Source", "Destination", "Result", "Error"}
	rows := make([][]string, len(results))
	for i, r := range results {
		dst := r.Dest
		if r.Name == api.CheckBulkhead {
			dst = r.SlowDest
		}
		result := "FAIL"
		if r.Result {
			result = "PASS"
		}
		rows[i] = []string{r.Name, orAny(r.Source), orAny(dst), result, oneLine(r.ErrorMsg)}
	}
	return table(header, rows)
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// table renders an ASCII table with left-aligned cells.
func table(header []string, rows [][]string) string {
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
			fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", n-utf8.RuneCountInString(c)))
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
