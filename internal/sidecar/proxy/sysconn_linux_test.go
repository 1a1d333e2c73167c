package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestSysConn_ReadWriteWritev(t *testing.T) {
	a, b := tcpPair(t)
	var w, r sysConn
	w.reset(a)
	r.reset(b)
	if !w.bound() || !r.bound() {
		t.Fatal("raw calls refused on a TCP connection")
	}
	if err := w.write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if err := w.writev([]byte("wide "), []byte("world")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, 64)
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len("hello wide world") && time.Now().Before(deadline) {
		n, err := r.read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "hello wide world" {
		t.Fatalf("read %q", got)
	}
	a.Close()
	if n, err := r.read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer closed: %d, %v; want 0, EOF", n, err)
	}
}

// A write larger than the socket's buffers waits in the netpoller until the reader has drained
// them, and goes on where it stopped: all of it arrives, in order.
func TestSysConn_LargeWritesWaitForRoom(t *testing.T) {
	a, b := tcpPair(t)
	_ = a.SetWriteBuffer(16 << 10)
	_ = b.SetReadBuffer(16 << 10)
	var w sysConn
	w.reset(a)
	head := bytes.Repeat([]byte("h"), 3000)
	body := make([]byte, 4<<20)
	for i := range body {
		body[i] = byte(i % 251)
	}
	done := make(chan error, 1)
	go func() {
		if err := w.writev(head, body); err != nil {
			done <- err
			return
		}
		done <- w.write([]byte("end"))
	}()
	got, err := io.ReadAll(io.LimitReader(b, int64(len(head)+len(body)+3)))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, head...), body...), "end"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, not what was written (%d)", len(got), len(want))
	}
}

// Deadlines, Close and the peer's reset give the errors net.Conn gives.
func TestSysConn_Errors(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		_, b := tcpPair(t)
		var r sysConn
		r.reset(b)
		_ = b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := r.read(make([]byte, 8))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v; want a deadline error", err)
		}
		if !strings.HasPrefix(err.Error(), "read tcp ") {
			t.Fatalf("err = %q; want net.Conn's form", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		_, b := tcpPair(t)
		var r sysConn
		r.reset(b)
		b.Close()
		if _, err := r.read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err = %v; want net.ErrClosed", err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		a, b := tcpPair(t)
		var w sysConn
		w.reset(b)
		_ = a.SetLinger(0)
		a.Close() // RST
		var err error
		for i := 0; i < 100 && err == nil; i++ { // the first write may still be accepted
			err = w.write([]byte("x"))
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("err = %v; want a reset or broken pipe", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "write" || oe.Addr == nil {
			t.Fatalf("err = %#v; want a *net.OpError with the addresses", err)
		}
	})
}

// The connections the proxy serves and dials use raw calls; turned off, the reader and the writer
// use net.Conn.
func TestSysConn_Chosen(t *testing.T) {
	a, _ := tcpPair(t)
	var cr connReader
	var cw connWriter
	cr.reset(a)
	cw.reset(a)
	if !cr.sc.bound() || !cw.sc.bound() {
		t.Fatal("a TCP connection does not use raw calls")
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	cr.reset(p1)
	if cr.sc.bound() {
		t.Fatal("a pipe uses raw calls")
	}
	netConnOnly.Store(true)
	defer netConnOnly.Store(false)
	cr.reset(a)
	if cr.sc.bound() {
		t.Fatal("raw calls used while turned off")
	}
}

// TestEngine_NetConnPath runs the engine's main tests on the net.Conn path (TLS connections to
// instances, and systems other than Linux, take it).
func TestEngine_NetConnPath(t *testing.T) {
	netConnOnly.Store(true)
	defer netConnOnly.Store(false)
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Pipelined", TestEngine_Pipelined},
		{"RequestBodies", TestEngine_RequestBodies},
		{"Answers", TestEngine_Answers},
		{"LargeStreamedAnswers", TestEngine_LargeStreamedAnswers},
		{"Upgrade", TestEngine_Upgrade},
		{"CallerGone", TestEngine_CallerGone},
		{"Timeouts", TestEngine_Timeouts},
		{"BodiesStream", TestProxy_BodiesStream},
	} {
		t.Run(tc.name, tc.f)
	}
}
