// Package supervise runs the application processes that sit beside the a8 sidecar and watches
// them, as Amalgam8's sidecar supervisor did: every command runs in its own process group with
// extra environment variables appended to the sidecar's own; signals the sidecar receives can be
// forwarded to them; when a command whose on_exit is "terminate" ends, the sidecar is told (it then
// deregisters, stops the others and exits with that code); commands whose on_exit is "ignore" are
// only logged when they end and are never restarted. Stop sends SIGTERM, waits a grace period
// (3s by default) and then SIGKILLs whatever remains.
//
// The package also holds the PID 1 reaper (see RunAsInit) used when the sidecar is the init
// process of a container.
package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The values allowed in Command.OnExit.
const (
	// OnExitTerminate makes the end of the command the end of the sidecar: it is delivered on
	// Supervisor.Terminated. It is the default when OnExit is empty.
	OnExitTerminate = "terminate"
	// OnExitIgnore makes the end of the command only logged; it is not restarted.
	OnExitIgnore = "ignore"
)

// DefaultGrace is how long Stop waits after SIGTERM before SIGKILL when Options.Grace is not set,
// as in Amalgam8.
const DefaultGrace = 3 * time.Second

// outputDrain bounds how long Stop waits, once every process has been waited for, for the output
// pipes to reach end of file. A descendant that left the process group can keep a pipe open
// forever; after this delay Stop closes the pipe instead.
const outputDrain = time.Second

// pollInterval is how often Stop checks whether the processes and groups it signalled are gone.
const pollInterval = 10 * time.Millisecond

// Command is one supervised process.
type Command struct {
	// Cmd is the argv; Cmd[0] is looked up in PATH unless it contains a slash.
	Cmd []string
	// Env holds "K=V" entries appended to the sidecar's own environment (a later entry for the
	// same key wins, so these override the sidecar's values).
	Env []string
	// OnExit is OnExitTerminate (the default when empty) or OnExitIgnore.
	OnExit string
	// KillGroup makes signals go to the command's whole process group, not only to the process.
	KillGroup bool
}

// Validate reports what is wrong with the command, if anything: an empty Cmd or program name, an
// Env entry that is not K=V, or an OnExit value other than "terminate", "ignore" or empty.
func (c Command) Validate() error {
	if len(c.Cmd) == 0 {
		return errors.New(`cmd is empty: list the program and its arguments, e.g. cmd: ["/usr/bin/app", "--port", "9080"]`)
	}
	if c.Cmd[0] == "" {
		return fmt.Errorf("cmd %q has an empty program name: cmd[0] must name the program to run", c.Cmd)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env entry %q of cmd %q is not of the form KEY=VALUE", kv, c.Cmd)
		}
	}
	switch c.OnExit {
	case "", OnExitTerminate, OnExitIgnore:
	default:
		return fmt.Errorf("on_exit %q of cmd %q is not allowed: use %q (the default) or %q",
			c.OnExit, c.Cmd, OnExitTerminate, OnExitIgnore)
	}
	return nil
}

// String returns the argv quoted, for logs and errors.
func (c Command) String() string { return fmt.Sprintf("%q", c.Cmd) }

// Options tune a Supervisor. The zero value is usable.
type Options struct {
	// Grace is how long Stop waits after SIGTERM before SIGKILL; zero or negative means
	// DefaultGrace (3s).
	Grace time.Duration
	// Logger receives process starts and exits; nil discards.
	Logger *slog.Logger
	// Stdout and Stderr are where the processes write; nil means the sidecar's own os.Stdout and
	// os.Stderr. An *os.File is handed to the processes directly; any other writer is fed from a
	// pipe, and writes to it are serialized, so one writer may be shared by every process.
	Stdout, Stderr io.Writer
	// Stdin is given to every process; nil means no input (/dev/null). Pass os.Stdin to share the
	// sidecar's input, as Amalgam8 did.
	Stdin *os.File
}

// Exit reports how a supervised process ended.
type Exit struct {
	// Command is the command that ended (with OnExit filled in).
	Command Command
	// Pid is the process id it had.
	Pid int
	// Code is the exit status; 128+signal number when it was killed by a signal (the shell
	// convention: 137 for SIGKILL, 143 for SIGTERM); -1 when Err is set.
	Code int
	// Err is non-nil if the process could not be waited for.
	Err error
}

// Supervisor runs a fixed set of commands. Create it with New, then call Start once and Stop
// once it is no longer needed (Stop is what ends the Supervisor's goroutines).
type Supervisor struct {
	cmds  []Command
	grace time.Duration
	log   *slog.Logger
	stdin *os.File
	out   [2]io.Writer // stdout, stderr

	outMu sync.Mutex // serializes writes to non-file out writers

	mu         sync.Mutex
	started    bool
	stopping   bool
	procs      []*proc
	exits      []Exit
	pending    int // started processes not yet waited for
	delivered  bool
	doneClosed bool
	pipes      []*os.File // read ends of the output pipes, closed by the copiers or by Stop

	terminated chan Exit     // capacity 1, receives at most one value
	done       chan struct{} // closed when every started process has been waited for
	stopped    chan struct{} // closed when Stop has finished

	waiters sync.WaitGroup
	copiers sync.WaitGroup
}

type proc struct {
	cmd       Command
	c         *exec.Cmd
	pid       int
	done      chan struct{} // closed once waited for
	groupGone atomic.Bool   // the process group was seen empty: never signal it again (its id may be reused)
}

// New validates every command and returns a Supervisor ready to Start. An empty list is allowed:
// Start then runs nothing and Done is closed at once.
func New(cmds []Command, opts Options) (*Supervisor, error) {
	s := &Supervisor{
		grace:      opts.Grace,
		log:        opts.Logger,
		stdin:      opts.Stdin,
		out:        [2]io.Writer{opts.Stdout, opts.Stderr},
		terminated: make(chan Exit, 1),
		done:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.out[0] == nil {
		s.out[0] = os.Stdout
	}
	if s.out[1] == nil {
		s.out[1] = os.Stderr
	}
	for i, c := range cmds {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("supervise: command %d of %d: %w", i+1, len(cmds), err)
		}
		c.Cmd = slices.Clone(c.Cmd)
		c.Env = slices.Clone(c.Env)
		if c.OnExit == "" {
			c.OnExit = OnExitTerminate
		}
		s.cmds = append(s.cmds, c)
	}
	return s, nil
}

// Start starts every command, in order, each in its own process group. If one cannot be started,
// Start stops the ones already started (as Stop does) and returns an error naming the command.
// Start may be called only once, and not after Stop.
func (s *Supervisor) Start() error {
	s.mu.Lock()
	switch {
	case s.started:
		s.mu.Unlock()
		return errors.New("supervise: Start was already called: create a new Supervisor to run the commands again")
	case s.stopping:
		s.mu.Unlock()
		return errors.New("supervise: Start called after Stop: create a new Supervisor to run the commands")
	}
	s.started = true
	for i, c := range s.cmds {
		if err := s.startLocked(c); err != nil {
			s.mu.Unlock()
			s.Stop(context.Background())
			return fmt.Errorf("supervise: cannot start command %d of %d %s: %w; check that the program exists, is executable and is on PATH",
				i+1, len(s.cmds), c, err)
		}
	}
	s.maybeCloseDoneLocked()
	s.mu.Unlock()
	return nil
}

// startLocked starts one command and its waiter (and output copiers). s.mu is held.
func (s *Supervisor) startLocked(c Command) error {
	cmd := exec.Command(c.Cmd[0], c.Cmd[1:]...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.stdin != nil {
		cmd.Stdin = s.stdin
	}
	var readEnds, writeEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for i, w := range s.out {
		f, ok := w.(*os.File)
		if !ok {
			r, pw, err := os.Pipe()
			if err != nil {
				closeAll(readEnds)
				closeAll(writeEnds)
				return fmt.Errorf("creating the output pipe: %w", err)
			}
			readEnds = append(readEnds, r)
			writeEnds = append(writeEnds, pw)
			f = pw
		}
		if i == 0 {
			cmd.Stdout = f
		} else {
			cmd.Stderr = f
		}
	}
	err := cmd.Start()
	closeAll(writeEnds) // the child has its copies
	if err != nil {
		closeAll(readEnds)
		return err
	}
	p := &proc{cmd: c, c: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	s.procs = append(s.procs, p)
	s.pending++
	s.log.Info("supervise: started process", "cmd", c.Cmd, "pid", p.pid, "on_exit", c.OnExit, "kill_group", c.KillGroup)

	// Pair each read end with the writer it feeds, in s.out order.
	ri := 0
	for _, w := range s.out {
		if _, ok := w.(*os.File); ok {
			continue
		}
		r := readEnds[ri]
		ri++
		s.pipes = append(s.pipes, r)
		s.copiers.Add(1)
		go s.copy(w, r)
	}
	s.waiters.Add(1)
	go s.wait(p)
	return nil
}

// copy feeds w from the pipe r until every writer has closed it or Stop closes r.
func (s *Supervisor) copy(w io.Writer, r *os.File) {
	defer s.copiers.Done()
	_, _ = io.Copy(lockedWriter{&s.outMu, w}, r)
	r.Close()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// wait waits for p, records its exit and delivers it on Terminated if it is the first
// "terminate" process to end.
func (s *Supervisor) wait(p *proc) {
	defer s.waiters.Done()
	err := p.c.Wait()
	e := Exit{Command: p.cmd, Pid: p.pid, Code: exitCode(p.c.ProcessState)}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		e.Err = fmt.Errorf("supervise: waiting for %s (pid %d): %w", p.cmd, p.pid, err)
		e.Code = -1
	}
	p.groupEmpty() // notes now, while the id cannot have been reused, whether the group outlives its leader

	s.mu.Lock()
	s.exits = append(s.exits, e)
	close(p.done)
	s.pending--
	deliver := p.cmd.OnExit == OnExitTerminate && !s.delivered
	if deliver {
		s.delivered = true
		s.terminated <- e // capacity 1 and sent once: never blocks
	}
	s.maybeCloseDoneLocked()
	s.mu.Unlock()

	attrs := []any{"cmd", p.cmd.Cmd, "pid", p.pid, "code", e.Code, "on_exit", p.cmd.OnExit}
	switch {
	case e.Err != nil:
		s.log.Error("supervise: process could not be waited for", append(attrs, "err", e.Err)...)
	case p.cmd.OnExit == OnExitIgnore:
		s.log.Info("supervise: process exited; on_exit is ignore, so it is not restarted", attrs...)
	default:
		s.log.Info("supervise: process exited", attrs...)
	}
}

// exitCode follows the shell convention: the exit status, or 128+signal when killed by a signal.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func (s *Supervisor) maybeCloseDoneLocked() {
	if s.pending == 0 && !s.doneClosed && (s.started || s.stopping) {
		s.doneClosed = true
		close(s.done)
	}
}

// Terminated delivers, once, the exit of the first "terminate" process to end, whatever made it
// end (including Stop). Ends of "ignore" processes are only logged. The channel is never closed;
// a Supervisor with no "terminate" command never delivers on it.
func (s *Supervisor) Terminated() <-chan Exit { return s.terminated }

// Done is closed when every started process has ended and been waited for (after Start, or after
// Stop when Start was never called). It does not wait for output to be copied; Stop does.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Signal forwards sig to every process still running: to its whole process group when the
// command has KillGroup set, else to the process only. Errors (such as a process having just
// exited) are ignored.
func (s *Supervisor) Signal(sig os.Signal) {
	for _, p := range s.snapshot() {
		if p.cmd.KillGroup {
			p.signalGroup(sig)
		} else {
			p.signal(sig)
		}
	}
}

func (s *Supervisor) snapshot() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.procs)
}

// signal signals the process itself, if it has not been waited for. os.Process uses a pidfd, so
// this cannot reach another process that reused the pid.
func (p *proc) signal(sig os.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	// An error means the process is already on its way out (os.ErrProcessDone): nothing to do.
	_ = p.c.Process.Signal(sig)
}

// signalGroup signals the process group the command was started in (its id is the leader's pid).
// Once the group has been seen empty it is never signalled again, so a reused id is not hit.
func (p *proc) signalGroup(sig os.Signal) {
	ss, ok := sig.(syscall.Signal)
	if !ok {
		p.signal(sig)
		return
	}
	if p.groupGone.Load() {
		return
	}
	if err := syscall.Kill(-p.pid, ss); errors.Is(err, syscall.ESRCH) {
		p.groupGone.Store(true)
	}
}

// groupEmpty reports whether no process is left in p's group, remembering a yes.
func (p *proc) groupEmpty() bool {
	if p.groupGone.Load() {
		return true
	}
	if err := syscall.Kill(-p.pid, 0); errors.Is(err, syscall.ESRCH) {
		p.groupGone.Store(true)
		return true
	}
	return false
}

// groupLive reports whether p's group still holds a process that is not a zombie: zombies
// waiting for their parent to reap them need no signal.
func (p *proc) groupLive() bool {
	return !p.groupEmpty() && liveMember(p.pid)
}

// liveMember reports whether a process of group pgid is not a zombie, according to /proc; true
// when /proc cannot be read.
func liveMember(pgid int) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true
	}
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		if f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// gone reports whether p has been waited for and, for KillGroup commands, nothing but zombies is
// left of its group.
func (p *proc) gone() bool {
	select {
	case <-p.done:
	default:
		return false
	}
	return !p.cmd.KillGroup || !p.groupLive()
}

// Stop ends every process: it sends SIGTERM (to the whole group for KillGroup commands), waits
// until they are gone, Options.Grace has passed or ctx is done, then sends SIGKILL to every
// process group still present and to every process not yet ended, and returns once every process
// has been waited for and its output copied. Stop is idempotent and safe to call concurrently: later
// calls wait for the first to finish. It may be called before Start, which then refuses to run.
func (s *Supervisor) Stop(ctx context.Context) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		<-s.stopped
		return
	}
	s.stopping = true
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	defer close(s.stopped)

	for _, p := range procs {
		if p.cmd.KillGroup {
			p.signalGroup(syscall.SIGTERM)
		} else {
			p.signal(syscall.SIGTERM)
		}
	}

	allGone := func() bool {
		for _, p := range procs {
			if !p.gone() {
				return false
			}
		}
		return true
	}
	if !allGone() {
		grace := time.NewTimer(s.grace)
		tick := time.NewTicker(pollInterval)
	wait:
		for !allGone() {
			select {
			case <-grace.C:
				break wait
			case <-ctx.Done():
				break wait
			case <-tick.C:
			}
		}
		grace.Stop()
		tick.Stop()
	}

	for _, p := range procs {
		if p.groupLive() {
			s.log.Warn("supervise: killing process group still present after SIGTERM", "cmd", p.cmd.Cmd, "pgid", p.pid)
			p.signalGroup(syscall.SIGKILL)
		}
		p.signal(syscall.SIGKILL) // in case the process left its group
	}
	s.waiters.Wait()

	// Output: give the pipes a moment to reach end of file, then close what a stray descendant
	// still holds open.
	copied := make(chan struct{})
	go func() {
		s.copiers.Wait()
		close(copied)
	}()
	drain := time.NewTimer(outputDrain)
	select {
	case <-copied:
	case <-drain.C:
		s.mu.Lock()
		for _, r := range s.pipes {
			r.Close()
		}
		s.mu.Unlock()
		<-copied
	}
	drain.Stop()

	s.mu.Lock()
	s.maybeCloseDoneLocked()
	s.mu.Unlock()
}

// Running returns the pids of the processes not yet ended, in start order.
func (s *Supervisor) Running() []int {
	var pids []int
	for _, p := range s.snapshot() {
		select {
		case <-p.done:
		default:
			pids = append(pids, p.pid)
		}
	}
	return pids
}

// Exits returns the exits recorded so far, in the order the processes ended.
func (s *Supervisor) Exits() []Exit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exits)
}
