// Package version reports the build of a8's binaries.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X github.com/a8fabric/a8/internal/version.Version=v1.2.3".
var Version = "dev"

// String returns Version, or for a development build the VCS revision Go recorded.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
	}
	return Version
}
