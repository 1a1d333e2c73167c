//go:build !linux

package proxy

import "net"

// sysConn is the raw-call path of Linux (sysconn_linux.go); elsewhere connections use net.Conn.
type sysConn struct{}

func (s *sysConn) reset(net.Conn)             {}
func (s *sysConn) bound() bool                { return false }
func (s *sysConn) read(p []byte) (int, error) { panic("proxy: no raw calls on this system") }
func (s *sysConn) write(p []byte) error       { panic("proxy: no raw calls on this system") }
func (s *sysConn) writev(a, b []byte) error   { panic("proxy: no raw calls on this system") }
