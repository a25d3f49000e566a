package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/recording"
)

func newRecordCmd() *cobra.Command {
	var (
		groups   []string
		g        groupFlags
		out      string
		opts     recording.Options
		count    uint64
		duration time.Duration
	)
	c := &cobra.Command{
		Use:   "record [--group G ...] [--topic T ...] [--encoding msgpack|json] -o DIR|FILE.mcap",
		Short: "Record every received message to MCAP files",
		Long: `record joins one or more groups and writes every message it receives to MCAP
(the container format of ROS 2 and Foxglove): one channel per topic and
sender, by default the payload's exact msgpack bytes (message encoding
"msgpack"), the receive time as log time and an MCL Message's "timestamp" as
publish time. The group and the sender are in each channel's metadata.

--encoding json records JSON that Foxglove plots as it is, instead of the
exact msgpack: message encoding "json", and a "jsonschema" schema per topic,
inferred from its first message and widened when a later one differs (the
wider schema gets a new channel, so each message is valid against its own
channel's schema; after 16 changes in a file, the topic's messages go under
a schema that describes no field). Payloads that are not maps are wrapped
as {"data": ...}; binary data is a base64 string (contentEncoding base64);
msgpack timestamps are {"sec", "nsec"}. JSON loses what JSON cannot say:
binary versus text, integer versus float for whole numbers once read back,
non-string map keys (written as strings), ext types other than timestamps,
duplicate keys (readers keep the last); a payload that is not msgpack is
kept as {"$raw": base64}. mcl replay needs the msgpack default, which is
lossless.

What is written reaches the disk, as complete MCAP records, at least every
--flush interval: if the recorder is killed (even with kill -9) the file
holds everything up to the last flush, and mcl info, dump and replay read it.
With -o DIR, files are named mcl-<UTC start time>-<sequence>.mcap and sort by
time; --split-size and --split-duration start new files. On a terminal a
progress line shows messages, bytes, rate and drops. Ctrl-C, --count or
--duration end the recording; a write error (a full disk) ends it with an
error, and the files finished before it stay intact. The summary at the end
counts the messages the files hold, and says how many were lost when a write
failed.`,
		Example: `  mcl record -o logs/
  mcl record --group ff15::c73d:cf41:ea8e:b0a0 --group 239.192.0.1 -o logs/ --split-size 1073741824
  mcl record --topic gps --topic imu -o trial.mcap --duration 10m
  mcl record --encoding json -o foxglove.mcap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("-o is required: a directory, or a file name ending in .mcap")
			}
			if len(groups) == 0 {
				groups = []string{mcl.DefaultGroup}
			}
			var conns []*mcl.Connection
			for _, grp := range groups {
				g.group = grp
				conn, err := g.connection()
				if err != nil {
					return err
				}
				conns = append(conns, conn)
			}
			subOpts, err := g.subscribeOptions()
			if err != nil {
				return err
			}
			rec, err := recording.Create(out, opts)
			if err != nil {
				if fsError(err) {
					return err // a read-only directory, a full disk: no fault of the command line
				}
				return usage(err)
			}
			failed := make(chan error, 1)
			done := make(chan struct{})
			var subs []*mcl.Subscriber
			closeAll := func() {
				for _, s := range subs {
					s.Close()
				}
			}
			var stopOnce sync.Once
			for _, conn := range conns {
				group := conn.Group()
				s, err := mcl.Subscribe(conn, func(m *mcl.Message) {
					if err := rec.Write(group, m); err != nil {
						select {
						case failed <- err:
						default:
						}
						return
					}
					if count > 0 && rec.Stats().Received >= count {
						stopOnce.Do(func() { close(done) })
					}
				}, append(subOpts, mcl.QueueLimits(1<<16, 256<<20))...)
				if err != nil {
					closeAll()
					rec.Close()
					return err
				}
				subs = append(subs, s)
			}
			subscribed()
			ctx := cmd.Context()
			var end <-chan time.Time
			if duration > 0 {
				end = time.After(duration)
			}
			progress := newProgress(cmd.ErrOrStderr())
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			var runErr error
		loop:
			for {
				select {
				case <-ctx.Done():
					break loop
				case <-end:
					break loop
				case <-done:
					break loop
				case runErr = <-failed:
					break loop
				case <-tick.C:
					progress(rec.Stats(), dropped(subs))
				}
			}
			closeAll()
			if err := rec.Close(); runErr == nil {
				runErr = err
			}
			st := rec.Stats()
			progress(st, dropped(subs))
			w := cmd.ErrOrStderr()
			if f, ok := w.(*os.File); ok && isTerminal(f) {
				fmt.Fprintln(w)
			}
			// The counts are of what the files hold, not of what arrived.
			fmt.Fprintf(w, "recorded %d messages, %d payload bytes, dropped %d\n", st.Messages, st.Bytes, dropped(subs))
			if st.Undescribed > 0 {
				fmt.Fprintf(w, "json: %d messages went under a schema that describes no field: their topics changed shape more than %d times in a file\n",
					st.Undescribed, recording.MaxSchemaChanges)
			}
			if st.Refused > 0 {
				fmt.Fprintf(w, "refused %d messages of new topics or senders: the file holds the 65535 channels an MCAP file can; record into a directory to start a new file instead\n", st.Refused)
			}
			if st.Lost > 0 {
				why := "write failed"
				if errors.Is(runErr, syscall.ENOSPC) {
					why = "disk full"
				}
				fmt.Fprintf(w, "%s: lost %d received messages that did not reach the file\n", why, st.Lost)
			}
			for _, f := range rec.Files() {
				fmt.Fprintln(w, "file", f)
			}
			return runErr
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&groups, "group", "g", nil, "group to record; repeat for several (default "+mcl.DefaultGroup+")")
	f.IntVarP(&g.port, "port", "p", mcl.DefaultPort, "UDP port of every group, 1024..65535")
	f.StringVarP(&g.iface, "iface", "i", "", "network interface by name, e.g. eth0 (default: the kernel's route)")
	f.IntVar(&g.rcvBuf, "rcvbuf", mcl.DefaultReadBuffer, "socket receive buffer to request, in bytes")
	g.usesRcv = true
	g.registerGap(f)
	f.StringArrayVarP(&g.topics, "topic", "t", nil, "record only this topic; repeat for several (default: all)"+topicHelp)
	f.StringVarP(&out, "output", "o", "", "directory for numbered files, or a file name ending in .mcap")
	f.Int64Var(&opts.SplitSize, "split-size", 0, "start a new file after this many bytes, e.g. 1073741824 (needs a directory)")
	f.DurationVar(&opts.SplitDuration, "split-duration", 0, "start a new file after this long, e.g. 10m (needs a directory)")
	f.DurationVar(&opts.FlushInterval, "flush", recording.DefaultFlushInterval, "longest time before a message is safely on disk")
	f.StringVar(&opts.Compression, "compression", "zstd", "chunk compression: zstd, lz4 or none")
	f.StringVarP(&opts.Encoding, "encoding", "e", "msgpack", "message encoding: msgpack (the exact payloads) or json (for Foxglove, with a JSON schema per topic)")
	f.Uint64Var(&count, "count", 0, "stop after this many messages (default: no limit)")
	f.DurationVar(&duration, "duration", 0, "stop after this long, e.g. 1h (default: no limit)")
	return c
}

// fsError reports whether err is the file system refusing: to create a
// file (a read-only or missing directory, no permission), to write or
// sync one (a full disk).
func fsError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe)
}

func dropped(subs []*mcl.Subscriber) uint64 {
	var n uint64
	for _, s := range subs {
		st := s.Stats()
		n += st.Dropped + st.KernelDrops
	}
	return n
}

// newProgress returns a function that redraws one status line on w when w
// is a terminal, and does nothing otherwise.
func newProgress(w io.Writer) func(recording.Stats, uint64) {
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f) {
		return func(recording.Stats, uint64) {}
	}
	start := time.Now()
	return func(st recording.Stats, drops uint64) {
		secs := time.Since(start).Seconds()
		fmt.Fprintf(w, "\r\033[Krecording: %d messages, %.1f MB, %.0f msg/s, dropped %d, files %d",
			st.Received, float64(st.ReceivedBytes)/1e6, float64(st.Received)/secs, drops, st.Files)
	}
}
