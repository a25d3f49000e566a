package main

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
)

func newInfoCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "info FILE...",
		Short: "Summarize recordings: time range, counts, topics",
		Long: `info describes MCAP recordings, like "mcap info" or "rosbag info". For each
file it prints its path, size, the library that wrote it, the message count,
duration, first and last log time (RFC 3339 UTC, then nanoseconds since the
Unix epoch), the chunk count and compression, and whether the file has its
summary section. A table of topics follows: message count, rate over the
file's duration, payload sizes (minimum, mean and maximum, in bytes), the
number of distinct senders and the group(s) the topic was received on.

A file whose recorder was killed (kill -9, power loss) has no summary: info
says "recovered by scanning: file was not closed", counts every intact
message and adds a "warning:" line giving the file offset of the damage. That
still exits 0; info exits 1 only when a file cannot be read at all (not
MCAP, or no permission), after describing the others.`,
		Example: `  mcl info rec.mcap
  mcl info logs/*.mcap`,
		Args: inspectFileArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkInputFiles(args); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var errs []error
			for i, name := range args {
				if i > 0 {
					fmt.Fprintln(out)
				}
				if err := printFileInfo(cmd, out, name); err != nil {
					if cmd.Context().Err() != nil {
						return err
					}
					errs = append(errs, err)
				}
			}
			return reportErrors(cmd.ErrOrStderr(), errs)
		},
	}
	completeRecordings(c)
	return c
}

// infoTopicStats accumulates one topic's row of the table.
type infoTopicStats struct {
	messages uint64
	bytes    uint64
	min, max int
	senders  map[netip.AddrPort]bool
	groups   map[netip.AddrPort]bool
}

func printFileInfo(cmd *cobra.Command, out io.Writer, name string) error {
	f, err := recording.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	info, infoErr := f.Info()
	if infoErr != nil {
		if _, _, ok := mcapDamage(infoErr); !ok {
			return infoErr // an I/O error, not damage
		}
	}

	// The payload sizes, senders and groups need a pass over the messages.
	ctx := cmd.Context()
	stats := map[string]*infoTopicStats{}
	var damage error
	for rec, err := range f.Records(recording.Filter{}) {
		if err != nil {
			damage = err
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		s := stats[rec.Topic]
		if s == nil {
			s = &infoTopicStats{min: len(rec.Payload), senders: map[netip.AddrPort]bool{}, groups: map[netip.AddrPort]bool{}}
			stats[rec.Topic] = s
		}
		s.messages++
		s.bytes += uint64(len(rec.Payload))
		s.min, s.max = min(s.min, len(rec.Payload)), max(s.max, len(rec.Payload))
		if rec.Sender.IsValid() {
			s.senders[rec.Sender] = true
		}
		if rec.Group.IsValid() {
			s.groups[rec.Group] = true
		}
	}
	if damage == nil {
		damage = infoErr
	}
	if damage != nil {
		if _, _, ok := mcapDamage(damage); !ok {
			return damage
		}
	}
	// Channels without messages still have a row.
	for _, ch := range info.Channels {
		if t := exactChannelTopic(ch); stats[t] == nil {
			stats[t] = &infoTopicStats{senders: map[netip.AddrPort]bool{}, groups: map[netip.AddrPort]bool{}}
		}
	}

	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	field := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...))
	}
	field("path", "%s", name)
	field("size", "%d bytes (%s)", st.Size(), humanSize(st.Size()))
	field("library", "%s", dashIfEmpty(info.Library))
	if info.Profile != "" {
		field("profile", "%s", info.Profile)
	}
	field("messages", "%d", info.MessageCount)
	var span time.Duration
	if info.MessageCount > 0 {
		span = time.Duration(info.MessageEndTime - info.MessageStartTime)
		field("duration", "%s", span)
		field("start", "%s (%d)", rfc3339UTC(time.Unix(0, int64(info.MessageStartTime))), info.MessageStartTime)
		field("end", "%s (%d)", rfc3339UTC(time.Unix(0, int64(info.MessageEndTime))), info.MessageEndTime)
	} else {
		field("duration", "-")
		field("start", "-")
		field("end", "-")
	}
	if info.ChunkCount > 0 {
		field("chunks", "%d%s", info.ChunkCount, chunkCompressionNote(name, st.Size()))
	} else {
		field("chunks", "0")
	}
	switch {
	case info.FromSummary:
		field("summary", "present")
	case errors.Is(damage, mcap.ErrTruncated):
		field("summary", "missing: recovered by scanning: file was not closed")
	case damage != nil:
		field("summary", "missing: recovered by scanning: file is damaged")
	default:
		field("summary", "absent: counted by scanning (written without one)")
	}
	if damage != nil {
		off, reason, _ := mcapDamage(damage)
		field("warning", "damaged at offset %d: %s; nothing after it is readable", off, reason)
	}
	field("topics", "%d", len(stats))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(stats) == 0 {
		return nil
	}

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tMESSAGES\tRATE/S\tMIN B\tAVG B\tMAX B\tSENDERS\tGROUP")
	for _, topic := range slices.Sorted(maps.Keys(stats)) {
		s := stats[topic]
		rate, avg, lo, hi := "-", "-", "-", "-"
		if span > 0 {
			rate = infoRate(float64(s.messages) / span.Seconds())
		}
		if s.messages > 0 {
			avg = fmt.Sprintf("%.1f", float64(s.bytes)/float64(s.messages))
			lo, hi = fmt.Sprint(s.min), fmt.Sprint(s.max)
		}
		groups := make([]string, 0, len(s.groups))
		for g := range s.groups {
			groups = append(groups, g.String())
		}
		slices.Sort(groups)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", topicLabel(topic), s.messages, rate, lo, avg, hi,
			len(s.senders), dashIfEmpty(strings.Join(groups, ",")))
	}
	return tw.Flush()
}

// exactChannelTopic is a channel's exact topic, as recording.Record gives it.
func exactChannelTopic(ch *mcap.Channel) string {
	if raw, err := base64.StdEncoding.DecodeString(ch.Metadata[recording.MetaTopicBase64]); err == nil && len(raw) > 0 {
		return string(raw)
	}
	return ch.Topic
}

func infoRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	case r >= 0.01 || r == 0:
		return fmt.Sprintf("%.2f", r)
	}
	return fmt.Sprintf("%.2g", r)
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// chunkCompressionNote names the compression of a file's chunks, as " (zstd)"
// or " (2 zstd, 1 none)", by walking the data section's record headers. It
// is best effort: "" if the file cannot be walked.
func chunkCompressionNote(name string, size int64) string {
	f, err := os.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	const (
		opFooter  = 0x02
		opChunk   = 0x06
		opDataEnd = 0x0f
	)
	counts := map[string]int{}
	var hdr [9]byte
	// The first record, the Header, follows the 8 byte magic.
	for off := int64(len(mcap.Magic)); off+int64(len(hdr)) <= size; {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		n := binary.LittleEndian.Uint64(hdr[1:])
		if n > uint64(size-off-int64(len(hdr))) || hdr[0] == opFooter || hdr[0] == opDataEnd {
			break
		}
		if hdr[0] == opChunk {
			// start, end, uncompressed size (8 bytes each), CRC (4), then the
			// compression as a uint32 length and the bytes.
			var b [28 + 4 + 16]byte
			m := min(uint64(len(b)), n)
			if _, err := f.ReadAt(b[:m], off+int64(len(hdr))); err != nil || m < 32 {
				break
			}
			l := binary.LittleEndian.Uint32(b[28:])
			if uint64(l) > m-32 {
				break
			}
			c := string(b[32 : 32+l])
			if c == "" {
				c = "none"
			}
			counts[c]++
		}
		off += int64(len(hdr)) + int64(n)
	}
	switch len(counts) {
	case 0:
		return ""
	case 1:
		for c := range counts {
			return " (" + c + ")"
		}
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[c], c))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
