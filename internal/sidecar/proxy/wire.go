package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// This file is the HTTP/1.x wire: reading heads and bodies from a connection into one buffer,
// parsing heads without copying them, and passing bodies on in their own framing (a chunked body
// goes through chunk by chunk as it came, trailers included).

const (
	readBufSize = 8 << 10  // a connection's read buffer; grows to maxHeadSize for a large head
	maxHeadSize = 64 << 10 // the largest request or response head accepted
	maxLineSize = 4 << 10  // the largest chunk-size or trailer line
)

var (
	errHeadTooLarge = errors.New("head larger than 64 KiB")
	errLineTooLong  = errors.New("chunk line longer than 4 KiB")
	errBadChunk     = errors.New("malformed chunked body")
)

// netConnOnly turns raw system calls (sysConn) off: tests set it to run the net.Conn path, which
// TLS connections and other systems take.
var netConnOnly atomic.Bool

// connReader buffers reads from a connection. A head returned by readHead, and slices of it,
// stay valid until the next read that needs room: the buffer is compacted only when it is full.
type connReader struct {
	c    net.Conn
	sc   sysConn // reads go through it when it is bound
	buf  []byte
	r, w int
}

func (cr *connReader) reset(c net.Conn) {
	cr.c, cr.r, cr.w = c, 0, 0
	cr.sc.reset(c)
	if cr.buf == nil {
		cr.buf = make([]byte, readBufSize)
	}
}

// read reads from the connection into p, as net.Conn's Read does.
func (cr *connReader) read(p []byte) (int, error) {
	if cr.sc.bound() {
		return cr.sc.read(p)
	}
	return cr.c.Read(p)
}

func (cr *connReader) buffered() int { return cr.w - cr.r }

// inject appends b to the buffered data, as if it had been read. It never moves what is in the
// buffer, so slices of it (the request's head, a body in hand) stay valid: without room after the
// data, the data and b go to a new buffer and the old one stays with those slices.
func (cr *connReader) inject(b []byte) {
	if cr.w+len(b) > len(cr.buf) {
		nb := make([]byte, max(readBufSize, cr.w-cr.r+len(b)))
		cr.w = copy(nb, cr.buf[cr.r:cr.w])
		cr.r, cr.buf = 0, nb
	}
	cr.w += copy(cr.buf[cr.w:], b)
}

// fill reads at least one byte into the buffer, making room first: compacting it, or growing it
// up to limit.
func (cr *connReader) fill(limit int) error {
	if cr.r == cr.w {
		cr.r, cr.w = 0, 0
	}
	if cr.w == len(cr.buf) {
		switch {
		case cr.r > 0:
			cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
			cr.r = 0
		case len(cr.buf) < limit:
			nb := make([]byte, min(2*len(cr.buf), limit))
			cr.w = copy(nb, cr.buf[cr.r:cr.w])
			cr.r, cr.buf = 0, nb
		default:
			return errHeadTooLarge
		}
	}
	n, err := cr.read(cr.buf[cr.w:])
	cr.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		return io.ErrNoProgress
	}
	return err
}

// readHead returns the next head, from its first line through the blank line that ends it, and
// consumes it. Empty lines before it are skipped (RFC 9112, 2.2). On an error, what was read stays
// buffered: after a timeout the caller may call readHead again.
func (cr *connReader) readHead() ([]byte, error) {
	scanned := 0 // bytes after cr.r already searched for the end of the head
	for {
		for cr.r < cr.w && (cr.buf[cr.r] == '\r' || cr.buf[cr.r] == '\n') && scanned == 0 {
			cr.r++
		}
		data := cr.buf[cr.r:cr.w]
		from := max(scanned-3, 0)
		end := -1
		if i := bytes.Index(data[from:], []byte("\n\r\n")); i >= 0 {
			end = from + i + 3
		}
		if i := bytes.Index(data[from:], []byte("\n\n")); i >= 0 && (end < 0 || from+i+2 < end) { // bare LF line endings
			end = from + i + 2
		}
		if end >= 0 {
			head := data[:end]
			cr.r += end
			return head, nil
		}
		scanned = len(data)
		if err := cr.fill(maxHeadSize); err != nil {
			return nil, err
		}
	}
}

// readLine returns the next line, through its LF, and consumes it.
func (cr *connReader) readLine() ([]byte, error) {
	scanned := 0
	for {
		data := cr.buf[cr.r:cr.w]
		if i := bytes.IndexByte(data[scanned:], '\n'); i >= 0 {
			line := data[:scanned+i+1]
			cr.r += scanned + i + 1
			return line, nil
		}
		scanned = len(data)
		if scanned >= maxLineSize {
			return nil, errLineTooLong
		}
		if err := cr.fill(cr.r + maxLineSize + readBufSize); err != nil {
			return nil, err
		}
	}
}

// copyError says which side of a copy failed.
type copyError struct {
	read bool // the source failed (else the destination)
	err  error
}

func (e *copyError) Error() string {
	if e.read {
		return "reading: " + e.err.Error()
	}
	return "writing: " + e.err.Error()
}

func (e *copyError) Unwrap() error { return e.err }

// copyN passes n bytes of the stream on to w.
func (cr *connReader) copyN(w *connWriter, n int64) error {
	for n > 0 {
		if cr.r == cr.w {
			if err := w.flush(); err != nil { // what came so far goes on before waiting for more
				return &copyError{err: err}
			}
			if n > int64(len(cr.buf)) {
				// Much still to come: straight from one connection to the other, through a larger
				// buffer than the connection's, so that a large body takes fewer system calls.
				return cr.relayN(w, n)
			}
			if err := cr.fill(len(cr.buf)); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return &copyError{read: true, err: err}
			}
		}
		take := min(int64(cr.w-cr.r), n)
		if err := w.write(cr.buf[cr.r : cr.r+int(take)]); err != nil {
			return &copyError{err: err}
		}
		cr.r += int(take)
		n -= int64(take)
	}
	return nil
}

// bodyBufSize is the buffer a large body is relayed through; bodyBufs pools them.
const bodyBufSize = 32 << 10

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, bodyBufSize); return &b }}

// relayN passes the next n bytes of the connection (none of them buffered) on to w's connection,
// w's buffer being empty; the last bytes read may overshoot n only in the connection's buffer,
// never in the relay buffer, which reads at most what is left.
func (cr *connReader) relayN(w *connWriter, n int64) error {
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	buf := *bp
	for n > int64(len(cr.buf)) {
		m, err := cr.read(buf[:min(int64(len(buf)), n)])
		if m > 0 {
			if werr := w.writeConn(buf[:m]); werr != nil {
				return &copyError{err: werr}
			}
			n -= int64(m)
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &copyError{read: true, err: err}
		}
		if m == 0 {
			return &copyError{read: true, err: io.ErrNoProgress}
		}
	}
	return cr.copyN(w, n) // the rest through the connection's buffer
}

// discardN reads and drops n bytes of the stream.
func (cr *connReader) discardN(n int64) error {
	for n > 0 {
		if cr.r == cr.w {
			if err := cr.fill(len(cr.buf)); err != nil {
				return err
			}
		}
		take := min(int64(cr.w-cr.r), n)
		cr.r += int(take)
		n -= take
	}
	return nil
}

// copyToEOF passes the rest of the stream on to w (a body delimited by the connection's close).
func (cr *connReader) copyToEOF(w *connWriter) error {
	for {
		if cr.r < cr.w {
			if err := w.write(cr.buf[cr.r:cr.w]); err != nil {
				return &copyError{err: err}
			}
			cr.r = cr.w
		}
		if err := w.flush(); err != nil {
			return &copyError{err: err}
		}
		if err := cr.fill(len(cr.buf)); err != nil {
			if err == io.EOF {
				return nil
			}
			return &copyError{read: true, err: err}
		}
	}
}

// copyChunked passes a chunked body on to w: as it is (framing, extensions and trailers) when
// raw, or only its data (for an HTTP/1.0 caller, which cannot read chunks).
func (cr *connReader) copyChunked(w *connWriter, raw bool) error {
	for {
		if cr.r == cr.w {
			if err := w.flush(); err != nil {
				return &copyError{err: err}
			}
		}
		line, err := cr.readLine()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &copyError{read: true, err: err}
		}
		size, err := chunkSize(line)
		if err != nil {
			return &copyError{read: true, err: err}
		}
		if raw {
			if err := w.write(line); err != nil {
				return &copyError{err: err}
			}
		}
		if size == 0 { // the last chunk; then trailers, up to an empty line
			for {
				line, err := cr.readLine()
				if err != nil {
					return &copyError{read: true, err: err}
				}
				if raw {
					if err := w.write(line); err != nil {
						return &copyError{err: err}
					}
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if err := cr.copyN(w, size); err != nil {
			return err
		}
		crlf, err := cr.readLine()
		if err != nil {
			return &copyError{read: true, err: err}
		}
		if len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return &copyError{read: true, err: errBadChunk}
		}
		if raw {
			if err := w.write(crlf); err != nil {
				return &copyError{err: err}
			}
		}
	}
}

// chunkSize parses a chunk-size line: hex digits, then maybe extensions after ';'.
func chunkSize(line []byte) (int64, error) {
	line = bytes.TrimRight(line, "\r\n")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 15 {
		return 0, errBadChunk
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, errBadChunk
		}
	}
	return n, nil
}

// connWriter buffers writes to a connection: a head and a small body go out in one write.
type connWriter struct {
	c   net.Conn
	sc  sysConn // writes go through it when it is bound
	buf []byte
	vec [2][]byte // the buffer and a large write, for one writev
}

const writeBufSize = 4 << 10

func (cw *connWriter) reset(c net.Conn) {
	cw.c = c
	cw.sc.reset(c)
	if cw.buf == nil {
		cw.buf = make([]byte, 0, writeBufSize)
	}
	cw.buf = cw.buf[:0]
}

// write buffers p, or writes it through when it does not fit: with what is buffered in one
// system call (a head and the body after it go out together).
func (cw *connWriter) write(p []byte) error {
	if len(cw.buf)+len(p) <= cap(cw.buf) {
		cw.buf = append(cw.buf, p...)
		return nil
	}
	if len(p) <= cap(cw.buf)/2 {
		if err := cw.flush(); err != nil {
			return err
		}
		cw.buf = append(cw.buf, p...)
		return nil
	}
	if len(cw.buf) == 0 {
		return cw.writeConn(p)
	}
	err := cw.writevConn(cw.buf, p)
	cw.buf = cw.buf[:0]
	return err
}

// writeConn writes p to the connection, past the buffer.
func (cw *connWriter) writeConn(p []byte) error {
	if cw.sc.bound() {
		return cw.sc.write(p)
	}
	_, err := cw.c.Write(p)
	return err
}

// writevConn writes a and b to the connection in one system call (writev) when it takes them.
func (cw *connWriter) writevConn(a, b []byte) error {
	if cw.sc.bound() {
		return cw.sc.writev(a, b)
	}
	cw.vec[0], cw.vec[1] = a, b
	bufs := net.Buffers(cw.vec[:])
	_, err := bufs.WriteTo(cw.c)
	cw.vec[0], cw.vec[1] = nil, nil
	return err
}

func (cw *connWriter) writeString(s string) {
	if len(cw.buf)+len(s) > cap(cw.buf) && len(cw.buf) > 0 {
		_ = cw.flush() // a head is smaller than the buffer; an error shows at the next flush
	}
	cw.buf = append(cw.buf, s...)
}

func (cw *connWriter) flush() error {
	if len(cw.buf) == 0 {
		return nil
	}
	err := cw.writeConn(cw.buf)
	cw.buf = cw.buf[:0]
	return err
}

// headLine is one header line of a head.
type headLine struct {
	name, value []byte
	hop         bool // hop-by-hop: not passed on
}

// head is a parsed request or response head. Its slices point into the connection's read buffer.
type head struct {
	// request
	method, target []byte
	// response
	status int
	reason []byte

	minor         int // HTTP/1.minor
	lines         []headLine
	contentLength int64 // -1: none given
	chunked       bool
	close         bool // the sender will close (or asks the other side to) after this message
	keepAlive     bool // HTTP/1.0 "Connection: keep-alive"
	upgrade       bool // Connection: upgrade with an Upgrade header
	expect100     bool

	join []byte // scratch for Lookup's joined values
}

// badHead is a head a proxy must refuse, with the reason.
type badHead struct{ reason string }

func (e *badHead) Error() string { return e.reason }

func malformed(format string, args ...any) error {
	return &badHead{reason: fmt.Sprintf(format, args...)}
}

// parseRequest parses a request head.
func (h *head) parseRequest(raw []byte) error {
	h.resetFields()
	line, rest := cutLine(raw)
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return malformed("malformed request line %q", truncate(line))
	}
	h.method, h.target = line[:sp1], line[sp1+1:sp2]
	if !isToken(h.method) {
		return malformed("malformed method %q", truncate(h.method))
	}
	if !validTarget(h.target, string(h.method) == "CONNECT") {
		return malformed("malformed request target %q", truncate(h.target))
	}
	var ok bool
	if h.minor, ok = httpVersion(line[sp2+1:]); !ok {
		return malformed("unsupported protocol %q: this proxy speaks HTTP/1.0 and HTTP/1.1", truncate(line[sp2+1:]))
	}
	if err := h.parseLines(rest); err != nil {
		return err
	}
	if h.minor == 0 && !h.keepAlive {
		h.close = true
	}
	return nil
}

// parseResponse parses a response head.
func (h *head) parseResponse(raw []byte) error {
	h.resetFields()
	line, rest := cutLine(raw)
	if len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return malformed("malformed status line %q", truncate(line))
	}
	var ok bool
	if h.minor, ok = httpVersion(line[:8]); !ok {
		return malformed("unsupported protocol in status line %q", truncate(line))
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return malformed("malformed status code %q", truncate(line))
		}
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if h.status < 100 {
		return malformed("malformed status code %q", truncate(line))
	}
	if len(line) > 13 {
		h.reason = line[13:]
		for _, c := range h.reason { // it is passed on: no CR (response splitting) or other control
			if c < ' ' && c != '\t' || c == 0x7f {
				return malformed("control character in status line %q", truncate(line))
			}
		}
	}
	if err := h.parseLines(rest); err != nil {
		return err
	}
	if h.minor == 0 && !h.keepAlive {
		h.close = true
	}
	return nil
}

func (h *head) resetFields() {
	lines, join := h.lines[:0], h.join[:0]
	*h = head{lines: lines, join: join, contentLength: -1}
}

func httpVersion(v []byte) (minor int, ok bool) {
	if len(v) != 8 || string(v[:7]) != "HTTP/1." {
		return 0, false
	}
	switch v[7] {
	case '0':
		return 0, true
	case '1':
		return 1, true
	}
	return 0, false
}

// cutLine returns the first line of b without its line ending, and the rest.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseLines parses header lines and the framing and connection headers among them. A NUL, or a
// CR that does not end a line, is refused: a next hop that took a bare CR for a line end would see
// other header lines than the proxy did. (Two vectorised passes over the lines: every CR counted,
// then those ending lines subtracted.)
func (h *head) parseLines(b []byte) error {
	if bytes.IndexByte(b, 0) >= 0 {
		return malformed("NUL in a header line")
	}
	crs := bytes.Count(b, cr)
	var connTokens [8][]byte
	nTokens := 0
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
			crs--
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return malformed("obsolete line folding in header")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return malformed("malformed header line %q", truncate(line))
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		hl := headLine{name: name, value: value}
		switch name[0] | 0x20 { // only names starting with c, e, k, p, t or u concern the proxy
		case 'c', 'e', 'k', 'p', 't', 'u':
		default:
			h.lines = append(h.lines, hl)
			continue
		}
		switch {
		case equalFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (h.contentLength >= 0 && h.contentLength != n) {
				return malformed("invalid Content-Length %q", truncate(value))
			}
			h.contentLength = n
		case equalFold(name, "Transfer-Encoding"):
			hl.hop = true
			// Only chunked alone: another coding would be lost when the proxy re-frames the body
			// (it writes its own Transfer-Encoding line, or de-chunks for an HTTP/1.0 caller).
			if !equalFold(value, "chunked") {
				return malformed("unsupported Transfer-Encoding %q: only chunked", truncate(value))
			}
			h.chunked = true
		case equalFold(name, "Connection"):
			hl.hop = true
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case equalFold(tok, "close"):
					h.close = true
				case equalFold(tok, "keep-alive"):
					h.keepAlive = true
				case equalFold(tok, "upgrade"):
					h.upgrade = true
				}
				if nTokens < len(connTokens) {
					connTokens[nTokens] = tok
					nTokens++
				}
			}
		case equalFold(name, "Keep-Alive"), equalFold(name, "Proxy-Connection"), equalFold(name, "Proxy-Authenticate"),
			equalFold(name, "Proxy-Authorization"), equalFold(name, "Trailer"):
			hl.hop = true
		case equalFold(name, "Te"):
			hl.hop = !equalFold(value, "trailers")
		case equalFold(name, "Upgrade"):
			hl.hop = true // passed on only for an upgrade, below
		case equalFold(name, "Expect"):
			if equalFold(value, "100-continue") {
				h.expect100 = true
				hl.hop = true // the proxy answers 100 Continue itself
			}
		}
		h.lines = append(h.lines, hl)
	}
	if crs != 0 {
		return malformed("bare CR in a header line")
	}
	if h.chunked && h.contentLength >= 0 {
		// RFC 9112, 6.1: a message with both is a smuggling attempt or a broken sender.
		return malformed("both Transfer-Encoding and Content-Length")
	}
	for i := range nTokens {
		if equalFold(connTokens[i], "Content-Length") {
			// The framing is never dropped: the body goes on with it, and without its length the
			// next hop would read the body as the next message (request smuggling).
			continue
		}
		for j := range h.lines {
			if equalFold(h.lines[j].name, string(connTokens[i])) {
				h.lines[j].hop = true
			}
		}
	}
	if h.upgrade && (h.minor == 0 || h.get("Upgrade") == nil) { // HTTP/1.0 has no upgrades
		h.upgrade = false
	}
	return nil
}

var cr = []byte{'\r'}

// parseLength parses a Content-Length value: digits only (RFC 9110, 8.6), no sign, no list.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validTarget reports whether a request target is one the proxy can route and pass on: origin
// form ("/path?query"), absolute form ("http://host/path"), "*", or any non-empty target of
// CONNECT (authority form), and in every case without spaces or control bytes.
func validTarget(t []byte, connect bool) bool {
	if len(t) == 0 {
		return false
	}
	for _, c := range t {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return connect || t[0] == '/' || len(t) == 1 && t[0] == '*' || indexString(t, "://") > 0
}

// get returns the value of the first line named name (case-insensitively), or nil.
func (h *head) get(name string) []byte {
	for i := range h.lines {
		if equalFold(h.lines[i].name, name) {
			return h.lines[i].value
		}
	}
	return nil
}

// Lookup implements rules.Headers: the values of every line named name, joined.
func (h *head) Lookup(name string) ([]byte, bool) {
	var first []byte
	n := 0
	for i := range h.lines {
		if equalFold(h.lines[i].name, name) {
			if n == 0 {
				first = h.lines[i].value
			}
			n++
		}
	}
	switch n {
	case 0:
		return nil, false
	case 1:
		return first, true
	}
	sep := ", "
	if name == "Cookie" {
		sep = "; "
	}
	h.join = h.join[:0]
	for i := range h.lines {
		if equalFold(h.lines[i].name, name) {
			if len(h.join) > 0 {
				h.join = append(h.join, sep...)
			}
			h.join = append(h.join, h.lines[i].value...)
		}
	}
	return h.join, true
}

// equalFold reports whether b equals the ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range []byte(`"(),/:;<=>?@[\]{}`) {
		t[c] = false
	}
	return t
}()

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
