package resilience

import (
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/texttable"
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

// table renders an ASCII table with left-aligned cells, as a8ctl does.
func table(header []string, rows [][]string) string { return texttable.Render(header, rows) }
