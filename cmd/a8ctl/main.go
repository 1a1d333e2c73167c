// Command a8ctl is a8's command-line client. Its commands (Amalgam8's rule-*, route-*, action-*,
// service-list, traffic-*, recipe-run) arrive with the controller; today it reports its version.
package main

import (
	"fmt"
	"os"

	"github.com/a8fabric/a8/internal/version"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		fmt.Println("a8ctl", version.String())
		return
	}
	fmt.Fprintln(os.Stderr, "a8ctl: no commands yet; the rule and route commands arrive with the controller.\nUsage: a8ctl version")
	os.Exit(2)
}
