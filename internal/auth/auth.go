// Package auth maps a request's bearer token to the tenant (namespace) it may act for. It is shared
// by the registry and the controller and implements Amalgam8's modes: none (one tenant, "default"),
// "trusted" (the token is the namespace), "jwt" (HS256 with a "namespace" claim), and chains of them.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/a8fabric/a8/internal/httpapi"
)

// DefaultNamespace is the only tenant when authentication is off.
const DefaultNamespace = "default"

var (
	// ErrEmptyToken means the request carried no token and the mode needs one.
	ErrEmptyToken = errors.New("no bearer token: send Authorization: Bearer <token>")
	// ErrUnauthorized means the token was understood and refused.
	ErrUnauthorized = errors.New("token not authorized")
	// ErrUnrecognized means the token is not of an authenticator's kind; a chain tries the next one.
	ErrUnrecognized = errors.New("token not recognized")
)

// Authenticator returns the namespace a token may act for.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (namespace string, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (string, error)

// Authenticate implements Authenticator.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (string, error) {
	return f(ctx, token)
}

// Default is the authenticator when no mode is set: one tenant, "default", reached with no token or
// the token "default"; any other token is refused, so a client that expects a tenant notices.
func Default() Authenticator {
	return AuthenticatorFunc(func(_ context.Context, token string) (string, error) {
		if token == "" || token == DefaultNamespace {
			return DefaultNamespace, nil
		}
		return "", fmt.Errorf("%w: authentication is off, so the only token accepted is %q (or none)", ErrUnauthorized, DefaultNamespace)
	})
}

// Trusted takes the token itself as the namespace. Use it only behind something that authenticates.
func Trusted() Authenticator {
	return AuthenticatorFunc(func(_ context.Context, token string) (string, error) {
		if token == "" {
			return "", ErrEmptyToken
		}
		if err := ValidNamespace(token); err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return token, nil
	})
}

// Chain tries each authenticator in order; a token one of them does not recognise goes to the next.
func Chain(auths ...Authenticator) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, token string) (string, error) {
		for _, a := range auths {
			ns, err := a.Authenticate(ctx, token)
			if errors.Is(err, ErrUnrecognized) {
				continue
			}
			return ns, err
		}
		if token == "" {
			return "", ErrEmptyToken
		}
		return "", fmt.Errorf("%w: no configured authentication mode recognises the token", ErrUnauthorized)
	})
}

// New builds the authenticator of the --auth_mode flag: a comma-separated list of "trusted" and
// "jwt" tried in order, or "" for none. jwtSecret is required with "jwt".
func New(modes string, jwtSecret string) (Authenticator, error) {
	var chain []Authenticator
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(strings.ToLower(m)); m {
		case "":
		case "trusted":
			chain = append(chain, Trusted())
		case "jwt":
			a, err := JWT([]byte(jwtSecret))
			if err != nil {
				return nil, err
			}
			chain = append(chain, a)
		default:
			return nil, fmt.Errorf("unknown auth mode %q: use trusted, jwt, or both as trusted,jwt", m)
		}
	}
	switch len(chain) {
	case 0:
		return Default(), nil
	case 1:
		return chain[0], nil
	}
	return Chain(chain...), nil
}

// ValidNamespace reports whether ns can name a tenant: 1 to 256 bytes, no control characters.
func ValidNamespace(ns string) error {
	if ns == "" || len(ns) > 256 {
		return fmt.Errorf("namespace must be 1 to 256 bytes, got %d", len(ns))
	}
	if strings.IndexFunc(ns, unicode.IsControl) >= 0 {
		return errors.New("namespace must not contain control characters")
	}
	return nil
}

// BearerToken returns the token of an Authorization header: "" when there is none, an error when the
// header is there but is not "Bearer <token>" (the scheme is case-insensitive).
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("malformed Authorization header: expected \"Bearer <token>\"")
	}
	return strings.TrimSpace(token), nil
}

type ctxKey struct{}

// WithNamespace returns ctx carrying the request's namespace.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, ctxKey{}, ns)
}

// Namespace returns the namespace Middleware stored in ctx, or "" outside an authenticated request.
func Namespace(ctx context.Context) string {
	ns, _ := ctx.Value(ctxKey{}).(string)
	return ns
}

// Middleware authenticates every request to next with a, storing the namespace in the request's
// context; refusals are answered with 401 through writeErr.
func Middleware(a Authenticator, writeErr httpapi.ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := BearerToken(r)
		if err != nil {
			writeErr(w, r, http.StatusUnauthorized, "error_auth_header_malformed", err.Error())
			return
		}
		ns, err := a.Authenticate(r.Context(), token)
		switch {
		case err == nil:
		case errors.Is(err, ErrEmptyToken):
			writeErr(w, r, http.StatusUnauthorized, "error_auth_header_missing", err.Error())
			return
		case errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnrecognized):
			writeErr(w, r, http.StatusUnauthorized, "error_auth_not_authorized", err.Error())
			return
		default:
			writeErr(w, r, http.StatusServiceUnavailable, "error_auth_failed_validation", "authentication failed: "+err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(WithNamespace(r.Context(), ns)))
	})
}
