package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/census"
)

// topicsSorts are the orders --sort takes.
var topicsSorts = []string{"name", "messages", "rate", "bandwidth", "size"}

func newTopicsCmd() *cobra.Command {
	var (
		g         groupFlags
		sortBy    string
		interval  time.Duration
		window    time.Duration
		once      bool
		asJSON    bool
		maxTopics int
	)
	c := &cobra.Command{
		Use:   "topics [--topic PATTERN ...] [--sort name|messages|rate|bandwidth|size] [--once] [--json]",
		Short: "Show a live table of every topic on a group",
		Long: `topics joins a group and counts every message by topic: messages, rate and
bandwidth over the last --window, the shortest and longest time between two
messages and its standard deviation (jitter), payload sizes (minimum, mean,
maximum, in bytes) and the number of distinct sender addresses (up to 64,
then "64+"). On a terminal it redraws the table every --interval; otherwise,
or with --json, it prints one JSON object a line per --interval:
  {"time": ..., "topics": [{"topic": "gps", "messages": 50, ...}], "refused": 0, "undecodable": 0, ...}
With --once it listens for --window, prints once and exits 0.

A footer counts undecodable datagrams (not mcl frames), messages of new
topics refused past --max-topics, and, for mcl/2 senders, datagrams lost,
reordered and repeated. mcl/2 loss is per sender, not per topic: the table
has no loss column. Topics that are not printable text are shown quoted,
with Go escapes, so that no topic can move the cursor or change colors.`,
		Example: `  mcl topics
  mcl topics --sort rate --topic 'camera/**'
  mcl topics --once --window 10s --json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("topics takes no arguments; got %q (a topic goes with --topic)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !slices.Contains(topicsSorts, sortBy) {
				return usagef("--sort %q: use %s", sortBy, strings.Join(topicsSorts, ", "))
			}
			if interval <= 0 || window <= 0 {
				return usagef("--interval and --window must be positive")
			}
			if maxTopics <= 0 {
				return usagef("--max-topics %d: must be positive", maxTopics)
			}
			conn, err := g.connection()
			if err != nil {
				return err
			}
			opts, err := g.subscribeOptions()
			if err != nil {
				return err
			}
			cen := census.NewWindow(maxTopics, window)
			// Count in the Subscriber's goroutine, render on a ticker.
			s, err := mcl.Subscribe(conn, func(m *mcl.Message) {
				at := m.Received
				if at.IsZero() {
					at = time.Now()
				}
				cen.Add(m.Topic, len(m.Payload), m.Sender, at)
			}, opts...)
			if err != nil {
				return err
			}
			defer s.Close()
			subscribed()
			out := cmd.OutOrStdout()
			v := topicsView{
				where: conn.String(), sortBy: sortBy, census: cen, sub: s,
				table: !asJSON && writesTerminal(out), pal: newPalette(out),
			}
			ctx := cmd.Context()
			if once {
				select {
				case <-time.After(window):
				case <-ctx.Done():
				}
				v.clear = false
				return v.print(out, time.Now())
			}
			v.clear = v.table
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case now := <-tick.C:
					if err := v.print(out, now); err != nil {
						return err
					}
				}
			}
		},
	}
	g.register(c, true)
	f := c.Flags()
	f.StringArrayVarP(&g.topics, "topic", "t", nil, "count only this topic; repeat for several (default: all topics)"+topicHelp)
	f.StringVar(&sortBy, "sort", "name", "order of the rows: "+strings.Join(topicsSorts, ", ")+" (numbers largest first)")
	f.DurationVar(&interval, "interval", time.Second, "time between two refreshes")
	f.DurationVar(&window, "window", census.DefaultWindow, "span that rate and bandwidth are measured over; with --once, how long to listen")
	f.BoolVar(&once, "once", false, "listen for --window, print once and exit")
	f.BoolVar(&asJSON, "json", false, "print JSON objects, even on a terminal")
	f.IntVar(&maxTopics, "max-topics", census.DefaultLimit, "most topics to track; messages of further topics are counted as refused")
	return c
}

// writesTerminal reports whether w is a terminal.
func writesTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

// topicsView renders the snapshots of a census.
type topicsView struct {
	where  string // the group, for the table's title
	sortBy string
	census *census.Census
	sub    *mcl.Subscriber
	table  bool // a table rather than JSON
	clear  bool // redraw the table in place
	pal    palette
}

// topicsFooter is what the Subscriber counts beside the census.
type topicsFooter struct {
	Refused     uint64 `json:"refused"`
	Undecodable uint64 `json:"undecodable"`
	Lost        uint64 `json:"lost"`
	Reordered   uint64 `json:"reordered"`
	Repeated    uint64 `json:"repeated"`
	Dropped     uint64 `json:"dropped"`
}

// senderLosses returns the loss of each mcl/2 sender sub heard, by
// address, for the rows' mcl/2 column of topics and spy.
func senderLosses(sub *mcl.Subscriber) map[netip.AddrPort]census.Loss {
	m := map[netip.AddrPort]census.Loss{}
	for _, s := range sub.Senders() {
		m[s.Addr] = census.Loss{Lost: s.Lost, Reordered: s.Reordered, Repeated: s.Repeated}
	}
	return m
}

func (v *topicsView) print(out io.Writer, now time.Time) error {
	ts := v.census.Snapshot(now)
	sortTopics(ts, v.sortBy)
	senders := senderLosses(v.sub)
	st := v.sub.Stats()
	foot := topicsFooter{
		Refused: v.census.Refused(), Undecodable: st.Malformed,
		Lost: st.Lost, Reordered: st.Reordered, Repeated: st.Repeated, Dropped: st.Dropped,
	}
	var b []byte
	if v.table {
		var buf bytes.Buffer
		if v.clear {
			buf.WriteString("\x1b[H\x1b[2J") // cursor home, clear the screen
		}
		renderTopicsTable(&buf, v.pal, v.where, now, ts, senders, foot, v.census.Limit())
		b = buf.Bytes()
	} else {
		var err error
		if b, err = topicsJSON(now, ts, senders, foot); err != nil {
			return err
		}
	}
	if _, err := out.Write(b); err != nil {
		return fmt.Errorf("write standard output: %w", err)
	}
	return nil
}

// sortTopics orders ts by name (bytewise) or by a number, largest first,
// ties by name.
func sortTopics(ts []census.TopicStats, by string) { census.Sort(ts, by, by != "name") }

// topicJSON is one topic in the JSON output.
type topicJSON struct {
	census.Row
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// topicsJSON renders a snapshot as one line of JSON.
func topicsJSON(now time.Time, ts []census.TopicStats, senders map[netip.AddrPort]census.Loss, foot topicsFooter) ([]byte, error) {
	rows := make([]topicJSON, len(ts))
	for i, s := range ts {
		rows[i] = topicJSON{Row: s.Row(senders), First: s.First.UTC(), Last: s.Last.UTC()}
	}
	b, err := json.Marshal(struct {
		Time   time.Time   `json:"time"`
		Topics []topicJSON `json:"topics"`
		topicsFooter
	}{now.UTC(), rows, foot})
	return append(b, '\n'), err
}

// maxTopicWidth is the widest a topic is shown in the table, in runes.
const maxTopicWidth = 48

// renderTopicsTable writes a snapshot as a table, each topic through
// safeTopic: nothing from the network reaches the terminal unescaped. On
// pal the header is bold and losses that are not zero red.
func renderTopicsTable(w io.Writer, pal palette, where string, now time.Time, ts []census.TopicStats, senders map[netip.AddrPort]census.Loss, foot topicsFooter, limit int) {
	fmt.Fprintf(w, "mcl topics on %s  %s  %d topics\n\n", where, now.Format("15:04:05"), len(ts))
	// The table is coloured once laid out: tabwriter would count the
	// colours' escape sequences as width.
	var table bytes.Buffer
	lossy := make([]string, len(ts)) // each row's mcl/2 cell when it counts a loss
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tMSGS\tRATE\tPERIOD MIN/MAX\tJITTER\tBANDWIDTH\tSIZE MIN/MEAN/MAX\tSENDERS\tMCL2 LOST/REORD/REP\t")
	for i, s := range ts {
		count := strconv.Itoa(s.Senders)
		if s.SendersMore {
			count += "+"
		}
		mcl2 := "-"
		if l := s.SendersLoss(senders); l != nil {
			mcl2 = fmt.Sprintf("%d/%d/%d", l.Lost, l.Reordered, l.Repeated)
			if l.Lost > 0 {
				lossy[i] = mcl2
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s/%s\t%s\t%s\t%d/%.0f/%d\t%s\t%s\t\n",
			safeTopic(s.Topic, maxTopicWidth), s.Messages, fmtRate(s.Rate),
			fmtPeriod(s.MinPeriod), fmtPeriod(s.MaxPeriod), fmtPeriod(s.Jitter),
			fmtBandwidth(s.Bandwidth), s.SizeMin, s.SizeMean, s.SizeMax, count, mcl2)
	}
	tw.Flush()
	if !pal.on {
		w.Write(table.Bytes())
	} else {
		for i, line := range strings.SplitAfter(table.String(), "\n") {
			switch {
			case i == 0:
				line = pal.bold(strings.TrimSuffix(line, "\n")) + "\n"
			case i <= len(lossy) && lossy[i-1] != "":
				// The mcl/2 cell is the row's last.
				j := strings.LastIndex(line, lossy[i-1])
				line = line[:j] + pal.red(lossy[i-1]) + line[j+len(lossy[i-1]):]
			}
			io.WriteString(w, line)
		}
	}
	n := func(name string, v uint64) string { return pal.loss(fmt.Sprintf("%s %d", name, v), v) }
	fmt.Fprintf(w, "\n%s  %s (messages of new topics past %d)  mcl/2 %s reordered %d repeated %d  %s\n",
		n("undecodable datagrams", foot.Undecodable), n("refused", foot.Refused), limit, n("lost", foot.Lost), foot.Reordered, foot.Repeated, n("dropped", foot.Dropped))
}

// safeTopic returns t as is when it is printable UTF-8 text, else quoted
// with Go escapes (so control characters, ANSI escapes, invalid UTF-8 and
// invisible formatting runes are shown, not obeyed), cut to width runes.
func safeTopic(t string, width int) string {
	s := t
	if needsQuote(t) {
		s = strconv.Quote(t)
	}
	if utf8.RuneCountInString(s) > width {
		r := []rune(s)
		s = string(r[:width-1]) + "…"
	}
	return s
}

func needsQuote(t string) bool {
	if t == "" || t[0] == '"' || !utf8.ValidString(t) {
		return true
	}
	for _, r := range t {
		if !strconv.IsPrint(r) {
			return true
		}
	}
	return false
}

func fmtRate(hz float64) string {
	switch {
	case hz == 0:
		return "0"
	case hz < 10:
		return fmt.Sprintf("%.2fHz", hz)
	}
	return fmt.Sprintf("%.1fHz", hz)
}

func fmtPeriod(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fmtBandwidth(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}
