package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "s3cret"

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNew(t *testing.T) {
	valid := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"namespace": "team-a"})
	expired := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"namespace": "team-a", "exp": time.Now().Add(-time.Minute).Unix()})
	future := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"namespace": "team-a", "exp": time.Now().Add(time.Hour).Unix()})
	wrongKey := sign(t, jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"namespace": "team-a"})
	noClaim := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "x"})
	hs512 := sign(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"namespace": "team-a"})
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"namespace": "team-a"})

	tests := []struct {
		modes, token, wantNS string
		wantErr              error
	}{
		{"", "", "default", nil},
		{"", "default", "default", nil},
		{"", "team-a", "", ErrUnauthorized},
		{"trusted", "team-a", "team-a", nil},
		{"trusted", "", "", ErrEmptyToken},
		{"trusted", "bad\x00ns", "", ErrUnauthorized},
		{"jwt", valid, "team-a", nil},
		{"jwt", future, "team-a", nil},
		{"jwt", expired, "", ErrUnauthorized},
		{"jwt", wrongKey, "", ErrUnauthorized},
		{"jwt", noClaim, "", ErrUnauthorized},
		{"jwt", hs512, "", ErrUnauthorized},
		{"jwt", none, "", ErrUnauthorized},
		{"jwt", "plain-token", "", ErrUnrecognized},
		{"jwt", "", "", ErrEmptyToken},
		{"jwt,trusted", valid, "team-a", nil},
		{"jwt,trusted", "plain-token", "plain-token", nil}, // not a JWT: falls through to trusted
		{"jwt,trusted", expired, "", ErrUnauthorized},      // a JWT that fails does not fall through
		{"trusted,jwt", valid, valid, nil},                 // order matters: trusted takes anything
		{" JWT , Trusted ", "x", "x", nil},
	}
	for _, tc := range tests {
		a, err := New(tc.modes, secret)
		if err != nil {
			t.Fatalf("New(%q): %v", tc.modes, err)
		}
		ns, err := a.Authenticate(context.Background(), tc.token)
		if !errors.Is(err, tc.wantErr) || ns != tc.wantNS {
			t.Errorf("modes %q token %.20q: got %q, %v; want %q, %v", tc.modes, tc.token, ns, err, tc.wantNS, tc.wantErr)
		}
	}
}

func TestNew_BadConfig(t *testing.T) {
	if _, err := New("jwt", ""); err == nil || !strings.Contains(err.Error(), "--jwt_secret") {
		t.Errorf("jwt without a secret: %v", err)
	}
	if _, err := New("kerberos", ""); err == nil || !strings.Contains(err.Error(), "kerberos") {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	a, _ := New("trusted", "")
	h := Middleware(a, func(w http.ResponseWriter, _ *http.Request, status int, code, msg string) {
		http.Error(w, code+": "+msg, status)
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(Namespace(r.Context())))
	}))
	tests := []struct {
		header   string
		wantCode int
		wantBody string
	}{
		{"Bearer team-a", 200, "team-a"},
		{"bearer team-b", 200, "team-b"},
		{"BEARER team-c", 200, "team-c"},
		{"", 401, "error_auth_header_missing: no bearer token"},
		{"Basic dXNlcjpwYXNz", 401, "error_auth_header_malformed: malformed Authorization header"},
		{"Bearer", 401, "error_auth_header_malformed"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
			t.Errorf("Authorization %q: %d %q; want %d containing %q", tc.header, w.Code, w.Body.String(), tc.wantCode, tc.wantBody)
		}
	}
}
