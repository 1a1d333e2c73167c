// Package netutil picks ports for processes that a8 starts (a8 demo, the end-to-end tests).
package netutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePort returns a TCP port that is free now, for a process about to be started to listen on.
//
// It is picked below the kernel's ephemeral range (ip_local_port_range), not from it: a port the
// kernel hands out for ":0" is also what it picks as the source port of outgoing connections, so
// between the pick and the child's bind an outgoing connection may take it ("address already in
// use"). Below the range only another listener can.
func FreePort() (int, error) {
	lo, hi := range_()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	// A crowded range: let the kernel choose.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("no free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// range_ is where FreePort picks: the 12,000 ports below the ephemeral range (Linux default
// 32768-60999), or 20000-32767 when the range cannot be read.
func range_() (lo, hi int) {
	lo, hi = 20000, 32768
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return lo, hi
	}
	eph, err := strconv.Atoi(f[0])
	if err != nil || eph < 2048 {
		return lo, hi
	}
	return max(1024, eph-12000), eph
}
