package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// NamespaceClaim is the JWT claim that names the tenant.
const NamespaceClaim = "namespace"

// JWT verifies HS256 tokens signed with secret and takes the namespace from their "namespace"
// claim. Expiry ("exp") and not-before ("nbf") are honoured. A string that is not a JWT at all is
// ErrUnrecognized, so a chain can hand it to the next mode.
func JWT(secret []byte) (Authenticator, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth mode jwt needs a secret: set --jwt_secret (env A8_JWT_SECRET)")
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}))
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return AuthenticatorFunc(func(_ context.Context, token string) (string, error) {
		if token == "" {
			return "", ErrEmptyToken
		}
		claims := jwt.MapClaims{}
		if _, err := parser.ParseWithClaims(token, claims, key); err != nil {
			if errors.Is(err, jwt.ErrTokenMalformed) {
				return "", fmt.Errorf("%w: not a JWT", ErrUnrecognized)
			}
			return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		ns, _ := claims[NamespaceClaim].(string)
		if ns == "" {
			return "", fmt.Errorf("%w: the JWT has no %q claim", ErrUnauthorized, NamespaceClaim)
		}
		if err := ValidNamespace(ns); err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return ns, nil
	}), nil
}
