package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mcl-go/mcl"
)

// Cross-process mode. Run stays the publisher of a throughput row and the
// pinger of a latency row, and starts a child process (Config.Spawn) for
// each subscriber, or for the echoes. A child holds the subscriber or the
// echo of both sides, mcl's and the baseline's, so that the two take turns
// on the same processes, as they do in one process.
//
// Run and a child talk over the child's stdin and stdout: Run writes the
// child's task, as a line of JSON; the child answers "ready" once its
// sockets are open, and Run starts publishing only when all its children
// have; Run closes the child's stdin to stop it, and the child exits. A
// subscriber counts what it receives into memory it shares with Run (see
// shared), which Run's publisher reads as it reads the counters of
// subscribers in its own process: the window and the tally are the same in
// both modes.

// The roles of a child process.
const (
	roleSubscriber = "subscriber" // one subscriber of a throughput row, mcl's and the baseline's
	roleEcho       = "echo"       // the echoes of a latency row, mcl's and the baseline's
)

// A task is what a child process does, sent on its stdin as one line of JSON.
type task struct {
	Role  string `json:"role"`
	Group string `json:"group"`
	// Ports of the Connections: mcl's, then the baseline's, for a
	// subscriber; mcl's ping and pong, then the baseline's, for an echo.
	Ports []int `json:"ports"`
	Size  int   `json:"size,omitempty"` // a subscriber's payload size: the baseline counts whole messages of it
	// Layout is how a subscriber's baseline datagrams hold messages of
	// Size bytes; nil is the seed framing's (seedLayout).
	Layout  *layout `json:"layout,omitempty"`
	Framing string  `json:"framing,omitempty"` // a subscriber's row's: FramingMCL2, or the seed's
	// Echoes are how an echo's mcl echoes publish, one for each pair of
	// Ports (ping, pong) but the last, the baseline's; nil is one in the
	// seed framing.
	Echoes []Variant `json:"echoes,omitempty"`
	// Spin is the mcl.Spin of the Connections.
	Spin time.Duration `json:"spin,omitempty"`
}

// readyLine is what a child writes on its stdout once it is set up.
const readyLine = "ready"

// sharedFD is a subscriber child's file descriptor for the memory of its
// counters: the first of exec.Cmd.ExtraFiles.
const sharedFD = 3

// A child that hangs must not hang the run: setupWait bounds how long it
// may take to get ready, stopWait how long to exit once told to stop.
const (
	setupWait = 30 * time.Second
	stopWait  = 10 * time.Second
)

// stderrLimit is how much of a child's stderr its errors quote: the start,
// where an error message or a panic is.
const stderrLimit = 4 << 10

// processes measures the rows of cross-process mode, with children that
// spawn returns.
type processes struct{ spawn func() *exec.Cmd }

// throughputRow measures a row as the in-process throughputRow does, with
// each of the subs subscribers in a child process of its own. The
// publishers stay in this process.
func (p processes) throughputRow(ctx context.Context, c, bc *mcl.Connection, f flow) (m, base Result, err error) {
	var kids children
	defer func() { kids.kill() }()
	t := task{Role: roleSubscriber, Group: c.Group().Addr().String(), Ports: []int{portOf(c), portOf(bc)}, Size: f.size, Layout: &f.lay, Framing: f.v.Framing, Spin: c.Spin()}
	for i := range f.subs {
		k, err := p.start(ctx, fmt.Sprintf("subscriber %d of %d", i+1, f.subs), t, 2)
		if err != nil {
			return m, base, err
		}
		kids = append(kids, k)
	}
	// While the window is full, the publisher gives the processor to the
	// subscribers' processes, as runtime.Gosched gives it to subscribers
	// in its own. Spinning instead, it took one of two processors from
	// them: both sides' rates of 16 KB and 1 MB messages fell by a third
	// to a half.
	ms, err := publisherMCL(c, f)
	if err != nil {
		return m, base, err
	}
	defer ms.close()
	bs, err := publisherBaseline(bc, f.lay)
	if err != nil {
		return m, base, err
	}
	defer bs.close()
	ms.wait, bs.wait = yieldCPU, yieldCPU
	for _, k := range kids {
		if err := k.ready(); err != nil {
			return m, base, err
		}
		ms.cs = append(ms.cs, k.counters.at(0))
		bs.cs = append(bs.cs, k.counters.at(1))
	}
	if m, base, err = takeTurns(ctx, ms, bs, f.size, f.d, kids.exitedEarly); err != nil {
		return m, base, err
	}
	return m, base, kids.stop()
}

// latencyRow measures a row as the in-process latencyRow does, with the
// echoes in a child process. The pingers stay in this process.
func (p processes) latencyRow(ctx context.Context, ping, pong, bping, bpong *mcl.Connection, size, rounds int) (m, base Result, err error) {
	runtime.GC() // as latencyRow does
	t := task{Role: roleEcho, Group: ping.Group().Addr().String(), Ports: []int{portOf(ping), portOf(pong), portOf(bping), portOf(bpong)}, Spin: ping.Spin()}
	echo, err := p.start(ctx, "echo", t, 0)
	if err != nil {
		return m, base, err
	}
	defer echo.kill()
	if err := echo.ready(); err != nil {
		return m, base, err
	}
	mp, closeMCL, err := pingerMCL(ping, pong, size, Variant{Framing: FramingSeed})
	if err != nil {
		return m, base, err
	}
	defer closeMCL()
	bp, closeBase, err := pingerBaseline(bping, bpong, size)
	if err != nil {
		return m, base, err
	}
	defer closeBase()
	rs, err := pingPong(ctx, rounds, echo.watch(mp), echo.watch(bp))
	if err != nil {
		return m, base, err
	}
	return rs[0], rs[1], echo.stop()
}

// latencyRows2 measures mcl/2's latency rows as the in-process
// latencyRows2 does, with all the echoes in one child process. The pingers
// stay in this process.
func (p processes) latencyRows2(ctx context.Context, conns []*mcl.Connection, size, rounds int) ([]Row, error) {
	runtime.GC() // as latencyRow does
	t := task{Role: roleEcho, Group: conns[0].Group().Addr().String(), Echoes: latencyVariants2, Spin: conns[0].Spin()}
	for _, c := range conns {
		t.Ports = append(t.Ports, portOf(c))
	}
	echo, err := p.start(ctx, "echo", t, 0)
	if err != nil {
		return nil, err
	}
	defer echo.kill()
	if err := echo.ready(); err != nil {
		return nil, err
	}
	var pingers []pinger
	for i, v := range latencyVariants2 {
		mp, closeMCL, err := pingerMCL(conns[2*i], conns[2*i+1], size, v)
		if err != nil {
			return nil, err
		}
		defer closeMCL()
		pingers = append(pingers, echo.watch(mp))
	}
	n := len(latencyVariants2)
	bp, closeBase, err := pingerBaseline(conns[2*n], conns[2*n+1], size)
	if err != nil {
		return nil, err
	}
	defer closeBase()
	rs, err := pingPong(ctx, rounds, append(pingers, echo.watch(bp))...)
	if err != nil {
		return nil, err
	}
	return rows2(rs, size), echo.stop()
}

func portOf(c *mcl.Connection) int { return int(c.Group().Port()) }

// A child is a process of cross-process mode, seen from Run.
type child struct {
	role     string // "subscriber 2 of 4", "echo": its errors start with it
	cmd      *exec.Cmd
	stdin    *os.File // its task; closed to stop it
	stdout   *os.File // where it says it is ready
	stderr   head
	counters *shared       // a subscriber's: mcl's at 0, the baseline's at 1
	exited   chan struct{} // closed once it has exited and err is set
	err      error         // cmd.Wait's
	release  sync.Once
}

// start starts a child for role with task t and, if counters > 0, that
// many counters shared with it. The child is killed when ctx ends. Errors:
// those of starting it, or of giving it its task.
func (p processes) start(ctx context.Context, role string, t task, counters int) (*child, error) {
	k := &child{role: role, exited: make(chan struct{})}
	line, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if counters > 0 {
		if k.counters, err = newShared(counters); err != nil {
			return nil, fmt.Errorf("%s: %w", role, err)
		}
	}
	// Pipes of our own rather than cmd's: cmd.Wait closes those, which
	// would race with reading the child's last words.
	inR, inW, err := os.Pipe()
	if err != nil {
		k.counters.close()
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		k.counters.close()
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := p.spawn()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, &k.stderr
	if k.counters != nil {
		cmd.ExtraFiles = []*os.File{k.counters.f} // sharedFD
	}
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		k.counters.close()
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("%s process: %w", role, err)
	}
	k.cmd, k.stdin, k.stdout = cmd, inW, outR
	go func() {
		k.err = cmd.Wait()
		close(k.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-k.exited:
		}
	}()
	if _, err := k.stdin.Write(append(line, '\n')); err != nil {
		return nil, k.failure("did not take its task")
	}
	return k, nil
}

// ready waits for the child to say that it is set up. Errors: the child's
// exit, something else said, or silence for setupWait, with its stderr.
func (k *child) ready() error {
	said := make(chan string, 1)
	go func() {
		// No more than the line: nothing else comes.
		line, _ := bufio.NewReader(k.stdout).ReadString('\n')
		said <- line
	}()
	select {
	case line := <-said:
		switch {
		case strings.TrimSpace(line) == readyLine:
			return nil
		case line == "":
			return k.failure("exited while setting up")
		}
		return k.failure(fmt.Sprintf("said %q instead of %q", line, readyLine))
	case <-time.After(setupWait):
		return k.failure(fmt.Sprintf("was not ready after %v", setupWait))
	}
}

// exitedEarly returns an error, with the child's stderr, if it has exited
// before it was told to stop.
func (k *child) exitedEarly() error {
	select {
	case <-k.exited:
		return k.failure("exited before its row was done")
	default:
		return nil
	}
}

// watch wraps a pinger whose echo is k. A round trip that times out
// because k died reports it, instead of counting as lost: otherwise every
// round trip left would wait out its timeout.
func (k *child) watch(p pinger) pinger {
	return func() error {
		err := p()
		if timedOut(err) {
			if died := k.exitedEarly(); died != nil {
				return died
			}
		}
		return err
	}
}

// stop tells the child to stop and waits for it to exit. Errors: an exit
// status other than 0, or no exit within stopWait.
func (k *child) stop() error {
	k.stdin.Close()
	return k.stopped()
}

// stopped waits for a child told to stop to exit, and releases it.
func (k *child) stopped() error {
	select {
	case <-k.exited:
	case <-time.After(stopWait):
		return k.failure(fmt.Sprintf("did not exit within %v of being told to stop", stopWait))
	}
	if k.err != nil {
		return k.failure("failed")
	}
	k.kill()
	return nil
}

// kill kills the child if it still runs, waits for it, and releases what
// it held. It may be called more than once.
func (k *child) kill() {
	k.cmd.Process.Kill() // an error only if it has exited
	<-k.exited
	k.release.Do(func() {
		k.stdin.Close()
		k.stdout.Close()
		k.counters.close()
	})
}

// failure kills the child and returns an error that names its role, says
// what happened and how it ended, and quotes its stderr.
func (k *child) failure(what string) error {
	k.kill()
	msg := fmt.Sprintf("%s process %s", k.role, what)
	if k.err != nil {
		msg += " (" + k.err.Error() + ")"
	}
	if s := k.stderr.String(); s != "" {
		msg += "; its stderr: " + s
	} else {
		msg += "; nothing on its stderr"
	}
	return errors.New(msg)
}

// children are the child processes of a row.
type children []*child

// exitedEarly returns the error of the first child that has exited.
func (ks children) exitedEarly() error {
	for _, k := range ks {
		if err := k.exitedEarly(); err != nil {
			return err
		}
	}
	return nil
}

// stop tells every child to stop, then waits for them all.
func (ks children) stop() error {
	for _, k := range ks {
		k.stdin.Close()
	}
	var errs []error
	for _, k := range ks {
		errs = append(errs, k.stopped())
	}
	return errors.Join(errs...)
}

// kill kills every child, then waits for them all.
func (ks children) kill() {
	for _, k := range ks {
		k.cmd.Process.Kill()
	}
	for _, k := range ks {
		k.kill()
	}
}

// head keeps the first stderrLimit bytes written to it, and counts the
// rest.
type head struct {
	buf  []byte
	more int
}

func (h *head) Write(p []byte) (int, error) {
	n := min(len(p), stderrLimit-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	h.more += len(p) - n
	return len(p), nil
}

func (h *head) String() string {
	s := strings.TrimSpace(string(h.buf))
	if h.more > 0 {
		s += fmt.Sprintf(" [and %d bytes more]", h.more)
	}
	return s
}

// ServeChild is the body of a child process of cross-process mode (see
// Config.Spawn). It reads its task from in: a subscriber of a throughput
// row, mcl's and the baseline's, which counts what it receives into memory
// shared with Run through file descriptor 3; or the echoes of a latency
// row. Once its sockets are open it writes "ready" on out, and it runs
// until in ends (Run closes it to stop the child) or ctx is done. Then it
// closes what it opened and returns. Errors: a task it cannot read, and
// those of opening the sockets.
func ServeChild(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("bench child: no task on stdin: %w", err)
	}
	var t task
	if err := json.Unmarshal(line, &t); err != nil {
		return fmt.Errorf("bench child: task %q: %w", line, err)
	}
	stop, err := t.start()
	if err != nil {
		return fmt.Errorf("bench %s: %w", t.Role, err)
	}
	defer stop()
	if _, err := fmt.Fprintln(out, readyLine); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, br)
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return nil
}

// start sets up what t asks for and returns the function that ends it.
func (t task) start() (func(), error) {
	conns := make([]*mcl.Connection, len(t.Ports))
	for i, p := range t.Ports {
		var err error
		if conns[i], err = mcl.NewConnection(t.Group, mcl.Port(p), mcl.Spin(t.Spin)); err != nil {
			return nil, err
		}
	}
	echoes := t.Echoes
	if echoes == nil {
		echoes = []Variant{{Framing: FramingSeed}}
	}
	switch {
	case t.Role == roleSubscriber && len(conns) == 2 && t.Size > 0:
		lay := seedLayout(t.Size)
		if t.Layout != nil {
			lay = *t.Layout
		}
		return subscribeBoth(conns[0], conns[1], lay, t.Framing)
	case t.Role == roleEcho && len(conns) == 2*len(echoes)+2:
		return echoAll(conns, echoes)
	}
	return nil, fmt.Errorf("bad task %+v", t)
}

// subscribeBoth subscribes an mcl Subscriber on c and a baseline socket on
// bc, counting what each receives into the shared counters at sharedFD;
// the baseline's datagrams are laid out as lay says.
func subscribeBoth(c, bc *mcl.Connection, lay layout, framing string) (func(), error) {
	s, err := mapShared(os.NewFile(sharedFD, "counters"))
	if err != nil {
		return nil, err
	}
	if len(s.mem) < 2*counterSpan {
		s.close()
		return nil, fmt.Errorf("shared memory of %d bytes holds no two counters", len(s.mem))
	}
	closeMCL, err := subscribeMCL(c, []*counter{s.at(0)}, framing == FramingMCL2)
	if err != nil {
		s.close()
		return nil, err
	}
	closeBase, err := subscribeBaseline(bc, lay, []*counter{s.at(1)})
	if err != nil {
		closeMCL()
		s.close()
		return nil, err
	}
	// The counters are unmapped only once nothing counts any more.
	return func() { closeMCL(); closeBase(); s.close() }, nil
}

// echoAll sets up an mcl echo for each of echoes, over a ping and a pong
// of conns, in order, and the baseline's over the last two.
func echoAll(conns []*mcl.Connection, echoes []Variant) (func(), error) {
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i, v := range echoes {
		closeMCL, err := echoMCL(conns[2*i], conns[2*i+1], v)
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, closeMCL)
	}
	n := len(echoes)
	closeBase, err := echoBaseline(conns[2*n], conns[2*n+1])
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, closeBase)
	return closeAll, nil
}
