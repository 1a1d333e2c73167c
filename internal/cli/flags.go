package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// cmdFlags registers a command's flags, each under a long name and optionally a one-letter alias
// (Amalgam8's "output, o"), and remembers them for the help.
type cmdFlags struct {
	fs    *flag.FlagSet
	specs []flagSpec
}

// flagSpec describes one flag for the help.
type flagSpec struct {
	long, short string
	arg         string // the value's name, empty for booleans
	usage       string
	def         string
	repeatable  bool
}

func (s flagSpec) synopsis() string {
	var b strings.Builder
	if s.short != "" {
		fmt.Fprintf(&b, "-%s, ", s.short)
	}
	fmt.Fprintf(&b, "--%s", s.long)
	if s.arg != "" {
		fmt.Fprintf(&b, " %s", s.arg)
	}
	if s.repeatable {
		b.WriteString(" (repeatable)")
	}
	return b.String()
}

func newCmdFlags(name string) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Main prints the errors and the help itself
	return &cmdFlags{fs: fs}
}

// names splits "output,o" into the long name and the alias.
func names(spec string) (long, short string) {
	long, short, _ = strings.Cut(spec, ",")
	return long, short
}

func (c *cmdFlags) add(spec string, v flag.Value, arg, usage, def string, repeatable bool) {
	long, short := names(spec)
	c.fs.Var(v, long, usage)
	if short != "" {
		c.fs.Var(v, short, usage)
	}
	c.specs = append(c.specs, flagSpec{long: long, short: short, arg: arg, usage: usage, def: def, repeatable: repeatable})
}

// String registers a string flag.
func (c *cmdFlags) String(p *string, spec, def, arg, usage string) {
	*p = def
	c.add(spec, (*stringValue)(p), arg, usage, def, false)
}

// Bool registers a boolean flag.
func (c *cmdFlags) Bool(p *bool, spec, usage string) {
	c.add(spec, (*boolValue)(p), "", usage, "", false)
}

// Int registers an integer flag; set, if not nil, records whether the command line gave it.
func (c *cmdFlags) Int(p *int, set *bool, spec string, def int, arg, usage string) {
	*p = def
	d := ""
	if def != 0 {
		d = fmt.Sprint(def)
	}
	c.add(spec, &intValue{p: p, set: set}, arg, usage, d, false)
}

// Duration registers a duration flag.
func (c *cmdFlags) Duration(p *time.Duration, spec string, def time.Duration, arg, usage string) {
	*p = def
	c.add(spec, (*durationValue)(p), arg, usage, def.String(), false)
}

// List registers a repeatable string flag.
func (c *cmdFlags) List(p *[]string, spec, arg, usage string) {
	c.add(spec, (*listValue)(p), arg, usage, "", true)
}

// Output registers -o/--output with the formats allowed; the first is the default.
func (c *cmdFlags) Output(p *string, formats ...string) {
	*p = formats[0]
	c.add("output,o", &choiceValue{p: p, choices: formats}, "format",
		"output format: "+strings.Join(formats, ", "), formats[0], false)
}

// JSONOutput registers --json, the Python a8ctl's flag for -o json.
func (c *cmdFlags) JSONOutput(p *string) {
	c.add("json", (*jsonFlag)(p), "", "the same as -o json (the Python a8ctl's flag)", "", false)
}

// jsonFlag is --json: set, it chooses the JSON output.
type jsonFlag string

func (v *jsonFlag) Set(s string) error {
	var on boolValue
	if err := on.Set(s); err != nil {
		return err
	}
	if on {
		*v = formatJSON
	}
	return nil
}
func (v *jsonFlag) String() string   { return "false" }
func (v *jsonFlag) IsBoolFlag() bool { return true }

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type boolValue bool

func (v *boolValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "1", "t", "true", "yes":
		*v = true
	case "0", "f", "false", "no":
		*v = false
	default:
		return fmt.Errorf("want true or false, got %q", s)
	}
	return nil
}
func (v *boolValue) String() string   { return fmt.Sprint(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

type intValue struct {
	p   *int
	set *bool
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("want a whole number, got %q", s)
	}
	*v.p = n
	if v.set != nil {
		*v.set = true
	}
	return nil
}

func (v *intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return fmt.Sprint(*v.p)
}

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 5s, got %q", s)
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

type listValue []string

func (v *listValue) Set(s string) error { *v = append(*v, s); return nil }
func (v *listValue) String() string     { return strings.Join(*v, ",") }

type choiceValue struct {
	p       *string
	choices []string
}

func (v *choiceValue) Set(s string) error {
	s = strings.ToLower(s)
	for _, c := range v.choices {
		if s == c {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("want %s, got %q", strings.Join(v.choices, ", "), s)
}

func (v *choiceValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// usageError is a command line that cannot run; Main exits with ExitUsage. It keeps the error it
// was made from, so that errors.Is and errors.As see through it.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError; as with fmt.Errorf, %w keeps the error it formats.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// asUsage makes err (not nil) a usageError.
func asUsage(err error) error {
	return &usageError{err: err}
}

// noArgs refuses positional arguments.
func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("takes no arguments, got %q", args)
	}
	return nil
}
