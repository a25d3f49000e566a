// Command mcl publishes, subscribes to and demonstrates mcl multicast
// groups. Each subcommand is a thin layer over the mcl package; `mcl help`
// lists them and `mcl CMD --help` explains every flag.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/topic"
	"github.com/mcl-go/mcl/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries a process exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usage marks err as a usage error: exit status 2.
func usage(err error) error { return &exitError{2, err} }

// usagef formats a usage error.
func usagef(format string, args ...any) error { return usage(fmt.Errorf(format, args...)) }

// run executes one command line and returns the exit status: 0 success,
// 1 failure, 2 bad usage.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// Library errors already start with "mcl: ".
	fmt.Fprintln(stderr, "mcl:", strings.TrimPrefix(err.Error(), "mcl: "))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "mcl",
		Short: "Publish and subscribe over IP multicast, wire-compatible with Python MCL",
		Long: `mcl publishes and receives msgpack messages on an IP multicast group, in the
frame format of the Python Multiprocess Communication Library, so Go and Python
nodes share a group. Messages are (topic, payload) pairs; payloads over 60000
bytes are fragmented.`,
		Example: `  mcl demo
  mcl sub --topic gps --count 10
  echo '{"lat": -33.89, "lon": 151.19}' | mcl pub --topic gps`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("mcl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%v (see %s --help)", err, c.CommandPath())
	})
	// Without Args, cobra reports an unknown command as a plain error,
	// exit status 1; it is bad usage. Args is checked only for a command
	// that runs: mcl alone prints its help.
	root.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	root.SuggestionsMinimumDistance = 2
	root.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q (see mcl help)", args[0])
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usage(errors.New(msg))
	}
	root.AddCommand(newPubCmd(), newSubCmd(), newDemoCmd(), newBenchCmd(), newBridgeCmd(),
		newRecordCmd(), newReplayCmd(), newInfoCmd(), newDumpCmd(), newConvertCmd(), newRecoverCmd(), newTopicsCmd(), newSpyCmd(), newVersionCmd())
	return root
}

// groupFlags are the flags every networked command shares.
type groupFlags struct {
	group   string
	port    int
	iface   string
	hops    int
	noLoop  bool
	rcvBuf  int
	topics  []string
	gap     time.Duration
	usesRcv bool
	framing string // the sending commands'
	express bool
	dgram   int
	envErr  error // a default from the environment that makes no sense
}

// The environment variables that set the defaults of --group, --port and
// --iface, as LCM_DEFAULT_URL and ROS_DOMAIN_ID do for those tools.
const (
	envGroup = "MCL_GROUP"
	envPort  = "MCL_PORT"
	envIface = "MCL_IFACE"
)

func (g *groupFlags) register(c *cobra.Command, receives bool) {
	f := c.Flags()
	group, port, iface := mcl.DefaultGroup, mcl.DefaultPort, ""
	if v := os.Getenv(envGroup); v != "" {
		group = v
	}
	if v := os.Getenv(envPort); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			g.envErr = usagef("%s=%q: not a port number; unset it or use 1024..65535", envPort, v)
		}
		port = p
	}
	iface = os.Getenv(envIface)
	f.StringVarP(&g.group, "group", "g", group, "multicast group, IPv6 (ff00::/8) or IPv4 (224.0.0.0/4), e.g. 239.192.0.1 (default from $"+envGroup+" when set)")
	f.IntVarP(&g.port, "port", "p", port, "UDP port, 1024..65535 (default from $"+envPort+" when set)")
	f.StringVarP(&g.iface, "iface", "i", iface, "network interface by name, e.g. eth0 (default: $"+envIface+" when set, else the kernel's route)")
	if receives {
		f.IntVar(&g.rcvBuf, "rcvbuf", mcl.DefaultReadBuffer, "socket receive buffer to request, in bytes")
		g.registerGap(f)
		g.usesRcv = true
	} else {
		f.IntVar(&g.hops, "hops", mcl.DefaultHops, "multicast hop limit (IPv4 TTL), 0..255")
		f.BoolVar(&g.noLoop, "no-loopback", false, "do not deliver to subscribers on this host")
		f.StringVar(&g.framing, "framing", "seed", "datagram format: seed (the Python library's, every node reads it) or mcl2 (Go nodes only: batching, sequence numbers, datagrams that fit the link; see docs/mcl2.md)")
		f.BoolVar(&g.express, "express", false, "with --framing mcl2: send each message at once in its own datagram, unbatched")
		f.IntVar(&g.dgram, "datagram-size", 0, "with --framing mcl2: datagram size in bytes (default: what the interface's MTU carries)")
	}
}

// publishOptions returns the options of the sending commands'
// Publishers. Errors: a usage error for an unknown --framing, or
// --express or --datagram-size without mcl2.
func (g *groupFlags) publishOptions() ([]mcl.PublishOption, error) {
	switch g.framing {
	case "seed":
		if g.express || g.dgram != 0 {
			return nil, usagef("--express and --datagram-size go with --framing mcl2")
		}
		return nil, nil
	case "mcl2", "2":
		opts := []mcl.PublishOption{mcl.WithFraming(mcl.FramingMCL2)}
		if g.express {
			opts = append(opts, mcl.Express())
		}
		if g.dgram != 0 {
			if g.dgram < mcl.MinDatagramSize || g.dgram > mcl.MaxDatagramSize {
				return nil, usagef("--datagram-size %d: use %d..%d", g.dgram, mcl.MinDatagramSize, mcl.MaxDatagramSize)
			}
			opts = append(opts, mcl.DatagramSize(g.dgram))
		}
		return opts, nil
	}
	return nil, usagef("--framing %q: use seed or mcl2", g.framing)
}

func (g *groupFlags) connection() (*mcl.Connection, error) {
	if g.envErr != nil && g.port == 0 {
		return nil, g.envErr
	}
	opts := []mcl.Option{mcl.Port(g.port)}
	if g.iface != "" {
		opts = append(opts, mcl.Interface(g.iface))
	}
	if g.usesRcv {
		opts = append(opts, mcl.ReadBuffer(g.rcvBuf))
	} else {
		opts = append(opts, mcl.Hops(g.hops), mcl.Loopback(!g.noLoop))
	}
	c, err := mcl.NewConnection(g.group, opts...)
	if err != nil {
		// A value that came from the environment, not a flag: say so.
		for _, e := range []struct{ name, val string }{{envGroup, g.group}, {envPort, strconv.Itoa(g.port)}, {envIface, g.iface}} {
			if v := os.Getenv(e.name); v != "" && v == e.val && strings.Contains(err.Error(), v) {
				err = fmt.Errorf("%w (from $%s)", err, e.name)
			}
		}
		return nil, usage(err)
	}
	return c, nil
}

// registerGap adds --gap, the reassembly gap of the receiving commands.
func (g *groupFlags) registerGap(f *pflag.FlagSet) {
	f.DurationVar(&g.gap, "gap", wire.DefaultLimits().Gap, "drop a fragmented message when this long passes between two of its fragments (see docs/wire.md)")
}

// topicHelp explains what a --topic flag takes.
const topicHelp = `: a name, or a pattern: "*" is any one /-separated segment, "**" any number (camera/*, **/front)`

// checkTopics returns a usage error for a --topic pattern that
// internal/topic refuses.
func checkTopics(list []string) error {
	if _, err := topic.NewFilter(list); err != nil {
		return usagef("--topic: %v", err)
	}
	return nil
}

// subscribeOptions returns the options of the receiving commands'
// Subscribers. Errors: a usage error for a --gap that is not positive.
func (g *groupFlags) subscribeOptions() ([]mcl.SubscribeOption, error) {
	if g.gap <= 0 {
		return nil, usagef("--gap %v: must be positive", g.gap)
	}
	if err := checkTopics(g.topics); err != nil {
		return nil, err
	}
	return []mcl.SubscribeOption{mcl.Topics(g.topics...), mcl.ReassemblyLimits(wire.Limits{Gap: g.gap})}, nil
}

func printCounters(w io.Writer, cs []mcl.Counter) {
	for _, c := range cs {
		fmt.Fprintf(w, "%s %d\n", c.Name, c.Value)
	}
}
