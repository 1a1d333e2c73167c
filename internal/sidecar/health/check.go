// Package health implements the sidecar's health checks of the application it sits beside, in
// Amalgam8's model: http, https, tcp and file (command) checks, each run on its own interval, and
// a Monitor that reports whether every check passes. The sidecar registers the application in the
// service registry only while the Monitor is healthy, deregisters it on any failure and registers
// it again on recovery.
package health

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Check types: the value of Check.Type, and the URL schemes of the flag/env form.
const (
	// TypeHTTP is an HTTP request to Check.Value (an http:// URL).
	TypeHTTP = "http"
	// TypeHTTPS is an HTTPS request to Check.Value (an https:// URL), trusting Check.CACertFile if set.
	TypeHTTPS = "https"
	// TypeTCP is a TCP connection to Check.Value (host:port, or a tcp://host:port URL).
	TypeTCP = "tcp"
	// TypeFile is a command run from Check.Value (its path) with Check.Args.
	TypeFile = "file"
)

// Defaults applied by Check.WithDefaults.
const (
	// DefaultInterval is the time between two runs of a check.
	DefaultInterval = 30 * time.Second
	// DefaultTimeout bounds one run of a check.
	DefaultTimeout = 5 * time.Second
	// DefaultMethod is the method of http and https checks.
	DefaultMethod = "GET"
	// DefaultHTTPCode is the status an http or https check expects.
	DefaultHTTPCode = 200
)

// Check is one health check, in Amalgam8's YAML shape (the healthchecks list of the sidecar's
// configuration file). Zero fields take their defaults (see WithDefaults).
type Check struct {
	// Type is http, https, tcp or file.
	Type string `yaml:"type" json:"type"`
	// Value is the URL (http, https), host:port (tcp; a tcp:// URL is accepted too) or command
	// path (file; a file:// URL is accepted too, a name without a slash is looked up in PATH).
	Value string `yaml:"value" json:"value"`
	// Interval is the time between two runs; default 30s.
	Interval time.Duration `yaml:"interval" json:"interval"`
	// Timeout bounds one run; default 5s. It may exceed Interval (runs then follow each other).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Method is the request method of http and https checks; default GET.
	Method string `yaml:"method" json:"method"`
	// Code is the expected HTTP status (http, https; default 200) or exit status (file; default 0).
	Code int `yaml:"code" json:"code"`
	// Args are the command's arguments (file).
	Args []string `yaml:"args" json:"args"`
	// CACertFile is a PEM CA bundle that https checks trust instead of the system roots.
	CACertFile string `yaml:"ca_cert_file" json:"ca_cert_file"`
}

// ParseURL parses the flag/env form of one check, whose URL scheme selects the type:
// http://host[:port]/path, https://host[:port]/path, tcp://host:port or file:///path/to/cmd (the
// check runs the URL's path, without arguments). The returned check has only Type and Value set;
// the other fields take their defaults.
func ParseURL(s string) (Check, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Check{}, errors.New("health check URL is empty: use http://, https://, tcp:// or file:// URLs, e.g. http://localhost:9080/health")
	}
	u, err := url.Parse(s)
	if err != nil {
		return Check{}, fmt.Errorf("health check URL %q: %w: use http://, https://, tcp:// or file:// URLs, e.g. http://localhost:9080/health", s, err)
	}
	var c Check
	switch u.Scheme {
	case TypeHTTP, TypeHTTPS:
		c = Check{Type: u.Scheme, Value: s}
	case TypeTCP:
		addr, err := tcpAddr(s)
		if err != nil {
			return Check{}, fmt.Errorf("health check URL %q: %w", s, err)
		}
		c = Check{Type: TypeTCP, Value: addr}
	case TypeFile:
		path, err := filePath(u)
		if err != nil {
			return Check{}, fmt.Errorf("health check URL %q: %w", s, err)
		}
		c = Check{Type: TypeFile, Value: path}
	default:
		return Check{}, fmt.Errorf("health check URL %q has unknown scheme %q: use http://, https://, tcp:// or file:// (e.g. http://localhost:9080/health, tcp://localhost:9080, file:///bin/ls)", s, u.Scheme)
	}
	if _, err := validate(c.WithDefaults()); err != nil {
		return Check{}, err
	}
	return c, nil
}

// ParseList parses a comma-separated list of check URLs (the --healthchecks flag and the
// A8_HEALTHCHECKS environment variable), ignoring empty items.
func ParseList(s string) ([]Check, error) {
	var checks []Check
	for i, item := range strings.Split(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		c, err := ParseURL(item)
		if err != nil {
			return nil, fmt.Errorf("item %d of the health check list: %w", i+1, err)
		}
		checks = append(checks, c)
	}
	return checks, nil
}

// WithDefaults returns c with defaults applied: Type lower-cased, Interval 30s and Timeout 5s when
// zero, Method GET and Code 200 for http and https when unset, and a tcp:// or file:// URL in Value
// reduced to its address or path. Invalid values are kept for Validate to report.
func (c Check) WithDefaults() Check {
	c.Type = strings.ToLower(strings.TrimSpace(c.Type))
	c.Value = strings.TrimSpace(c.Value)
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Type {
	case TypeHTTP, TypeHTTPS:
		if c.Method == "" {
			c.Method = DefaultMethod
		}
		if c.Code == 0 {
			c.Code = DefaultHTTPCode
		}
	case TypeTCP:
		if strings.HasPrefix(strings.ToLower(c.Value), "tcp://") {
			if addr, err := tcpAddr(c.Value); err == nil {
				c.Value = addr
			}
		}
	case TypeFile:
		if strings.HasPrefix(strings.ToLower(c.Value), "file:") {
			if u, err := url.Parse(c.Value); err == nil {
				if path, err := filePath(u); err == nil {
					c.Value = path
				}
			}
		}
	}
	return c
}

// Validate reports what is wrong with c once defaults are applied (zero fields are valid: they
// take their defaults): an unknown type, a value missing or malformed for the type, an interval or
// timeout that is negative, a code out of range (100..599 for http and https, 0..255 for file), a
// method that is not an HTTP token, or a ca_cert_file that cannot be read or holds no PEM
// certificate. Fields that the type does not use are ignored.
func (c Check) Validate() error {
	_, err := validate(c.WithDefaults())
	return err
}

// String describes c for logs and errors: "GET http://localhost:9080/health" (with any password in
// the URL redacted), "tcp localhost:9080" or "file /bin/ls -l".
func (c Check) String() string {
	switch c.Type {
	case TypeHTTP, TypeHTTPS:
		m := c.Method
		if m == "" {
			m = DefaultMethod
		}
		v := c.Value
		if u, err := url.Parse(v); err == nil {
			v = u.Redacted()
		}
		return m + " " + v
	case TypeFile:
		return strings.Join(append([]string{"file", c.Value}, c.Args...), " ")
	case "":
		return "(no type) " + c.Value
	}
	return c.Type + " " + c.Value
}

// validate checks c, which has defaults applied, and returns the CA pool of an https check with a
// ca_cert_file (nil otherwise).
func validate(c Check) (*x509.CertPool, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("health check %s: "+format, append([]any{c}, args...)...)
	}
	switch c.Type {
	case TypeHTTP, TypeHTTPS, TypeTCP, TypeFile:
	case "":
		return nil, bad("type is missing: set type to http, https, tcp or file")
	default:
		return nil, bad("type %q is unknown: use http, https, tcp or file", c.Type)
	}
	if c.Value == "" {
		switch c.Type {
		case TypeHTTP, TypeHTTPS:
			return nil, bad("value is missing: set it to the URL to request, e.g. %s://localhost:9080/health", c.Type)
		case TypeTCP:
			return nil, bad("value is missing: set it to the host:port to connect to, e.g. localhost:9080")
		default:
			return nil, bad("value is missing: set it to the path of the command to run, e.g. /bin/ls")
		}
	}
	if c.Interval <= 0 {
		return nil, bad("interval %s is not positive: set a positive duration such as 30s, or omit it for the default 30s", c.Interval)
	}
	if c.Timeout <= 0 {
		return nil, bad("timeout %s is not positive: set a positive duration such as 5s, or omit it for the default 5s", c.Timeout)
	}
	var pool *x509.CertPool
	switch c.Type {
	case TypeHTTP, TypeHTTPS:
		u, err := url.Parse(c.Value)
		if err != nil {
			return nil, bad("value is not a URL: %w: use e.g. %s://localhost:9080/health", err, c.Type)
		}
		if u.Scheme != c.Type {
			return nil, bad("value has scheme %q but the type is %s: make them match, e.g. %s://localhost:9080/health", u.Scheme, c.Type, c.Type)
		}
		if u.Host == "" || u.Hostname() == "" {
			return nil, bad("value has no host: use e.g. %s://localhost:9080/health", c.Type)
		}
		if p := u.Port(); p != "" {
			if err := checkPort(p); err != nil {
				return nil, bad("value: %w", err)
			}
		}
		if !isToken(c.Method) {
			return nil, bad("method %q is not an HTTP method token: use e.g. GET, HEAD or POST", c.Method)
		}
		if c.Code < 100 || c.Code > 599 {
			return nil, bad("code %d is not an HTTP status: use 100..599, or omit it for 200", c.Code)
		}
		if c.Type == TypeHTTPS && c.CACertFile != "" {
			pem, err := os.ReadFile(c.CACertFile)
			if err != nil {
				return nil, bad("ca_cert_file: %w: point it to a readable PEM CA bundle, or omit it to trust the system roots", err)
			}
			pool = x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, bad("ca_cert_file %s holds no PEM certificate: point it to a PEM CA bundle (-----BEGIN CERTIFICATE-----)", c.CACertFile)
			}
		}
	case TypeTCP:
		v := c.Value
		if strings.HasPrefix(strings.ToLower(v), "tcp://") {
			var err error
			if v, err = tcpAddr(v); err != nil {
				return nil, bad("%w", err)
			}
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return nil, bad("value is not host:port: %w: use e.g. localhost:9080", err)
		}
		if host == "" {
			return nil, bad("value %q has no host: use e.g. localhost:9080", v)
		}
		if err := checkPort(port); err != nil {
			return nil, bad("value: %w", err)
		}
	case TypeFile:
		if strings.ContainsRune(c.Value, 0) {
			return nil, bad("value contains a NUL byte: set it to the path of the command to run")
		}
		if strings.HasPrefix(strings.ToLower(c.Value), "file:") {
			u, err := url.Parse(c.Value)
			if err == nil {
				_, err = filePath(u)
			}
			if err != nil {
				return nil, bad("%w", err)
			}
		}
		if c.Code < 0 || c.Code > 255 {
			return nil, bad("code %d is not an exit status: use 0..255, or omit it for 0", c.Code)
		}
	}
	return pool, nil
}

// tcpAddr returns the host:port of a tcp://host:port URL.
func tcpAddr(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w: use tcp://host:port, e.g. tcp://localhost:9080", err)
	}
	if u.Scheme != TypeTCP || u.Opaque != "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not a tcp://host:port URL: use e.g. tcp://localhost:9080", s)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return "", fmt.Errorf("%q has no host or no port: use tcp://host:port, e.g. tcp://localhost:9080", s)
	}
	if err := checkPort(u.Port()); err != nil {
		return "", err
	}
	return u.Host, nil
}

// filePath returns the command path of a file:///path URL.
func filePath(u *url.URL) (string, error) {
	if u.Opaque != "" {
		return "", fmt.Errorf("file URL has a relative path %q: use an absolute path with three slashes, e.g. file:///bin/ls", u.Opaque)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("file URL has host %q: use three slashes before the path, e.g. file:///bin/ls", u.Host)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("file URL has a query or fragment: arguments cannot be given in the URL form; use the configuration file's healthchecks list with args")
	}
	if u.Path == "" || u.Path == "/" {
		return "", errors.New("file URL has no path: use the command's absolute path, e.g. file:///bin/ls")
	}
	return u.Path, nil
}

// checkPort reports whether p is a port number 1..65535.
func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number 1..65535: use a numeric port, e.g. localhost:9080", p)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of an HTTP method.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
