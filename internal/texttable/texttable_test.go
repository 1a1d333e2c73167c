package texttable

import "testing"

func TestRender(t *testing.T) {
	got := Render([]string{"Service", "Default Version"}, [][]string{{"reviews", "version=v1"}, {"é"}})
	want := `+---------+-----------------+
| Service | Default Version |
+---------+-----------------+
| reviews | version=v1      |
| é       |                 |
+---------+-----------------+
`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if got := Render([]string{"A"}, nil); got != "+---+\n| A |\n+---+\n" {
		t.Fatalf("no rows: %q", got)
	}
}
