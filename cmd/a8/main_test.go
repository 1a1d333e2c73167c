package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun_Errors(t *testing.T) {
	tests := []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		{[]string{"registry", "--namespace_capacity", "0"}, nil, "--namespace_capacity 0"},
		{[]string{"registry"}, map[string]string{"A8_NAMESPACE_CAPACITY": "-5"}, "--namespace_capacity -5"},
		{[]string{"registry", "--replication", "--replication_port", "6100"}, nil, "--store redis"},
		{[]string{"registry", "--store", "etcd"}, nil, `--store "etcd"`},
		{[]string{"registry", "--store", "redis"}, nil, "--store_address"},
		{[]string{"registry", "--auth_mode", "jwt"}, nil, "--jwt_secret"},
		{[]string{"registry", "--log_level", "chatty"}, nil, "--log_level"},
		{[]string{"registry", "--min_ttl", "1m", "--max_ttl", "30s"}, nil, "--min_ttl"},
		{[]string{"registry"}, map[string]string{"A8_DEFAULT_TTL": "soon"}, "A8_DEFAULT_TTL"},
		{[]string{"registry", "extra"}, nil, "takes no arguments"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v; want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// A valid configuration starts, and stops cleanly when its context ends.
func TestRun_RegistryStartsAndStops(t *testing.T) {
	t.Setenv("A8_API_PORT", "0")
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"registry", "--log_format", "json"}, &out, &out) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("registry did not stop")
	}
	if !strings.Contains(out.String(), `"msg":"a8 registry listening"`) {
		t.Fatalf("log output: %s", out.String())
	}
}

func TestRun_ControllerAndUpErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"controller", "--database_type", "kubernetes"}, "not supported"},
		{[]string{"controller", "--database_type", "redis"}, "--database_host"},
		{[]string{"controller", "--database_type", "etcd"}, `--database_type "etcd"`},
		{[]string{"controller", "--auth_mode", "magic"}, `unknown auth mode "magic"`},
		{[]string{"up", "--namespace_capacity", "0"}, "--namespace_capacity 0"},
		{[]string{"up", "--store", "redis"}, "flag provided but not defined: -store"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("run(%q) = %v; want an error containing %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestRun_UpStartsAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"up", "--api_port", "0", "--data_dir", dir}, &out, &out) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a8 up did not stop")
	}
	if !strings.Contains(out.String(), "registry and controller listening") {
		t.Fatalf("log output: %s", out.String())
	}
}
