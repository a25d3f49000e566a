package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
)

func newInfoCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "info FILE|DIR... [--json]",
		Short: "Summarize recordings: time range, counts, topics",
		Long: `info describes MCAP recordings, like "mcap info" or "ros2 bag info". For each
file it prints its path, size, the library that wrote it, the message count,
duration, first and last log time (RFC 3339 UTC, then nanoseconds since the
Unix epoch), the chunk count and compression, and whether the file has its
summary section. A table of topics follows: message count, rate over the
file's duration, payload sizes (minimum, mean and maximum, in bytes), the
number of distinct senders, the group(s) the topic was received on and the
message encoding(s) of its channels (msgpack as recorded, json after
"mcl convert"); a SCHEMA column is added when a channel has a schema.

A directory, such as one "mcl record -o DIR" splits a recording into, is
summarized as one recording, as "ros2 bag info" does: its .mcap files (not
those of subdirectories) are listed, and the counts, time range, chunks and
topic table are those of all of them together. A directory without .mcap
files is an error. Files and directories can be mixed.

With --json, info prints one JSON object a line per FILE or DIR argument
(see docs/recording.md for the fields).

A file whose recorder was killed (kill -9, power loss) has no summary: info
says "recovered by scanning: file was not closed", counts every intact
message and adds a "warning:" line giving the file offset of the damage. That
still exits 0; info exits 1 only when a file cannot be read at all (not
MCAP, or no permission), or a directory holds no .mcap file, after
describing the others.`,
		Example: `  mcl info rec.mcap
  mcl info logs/
  mcl info --json logs/ | jq .topics`,
		Args: inspectFileArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if _, err := os.Stat(name); errors.Is(err, os.ErrNotExist) {
					return usagef("%s: no such file or directory", name)
				} else if err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			var errs []error
			printed := 0
			for _, name := range args {
				sum, err := summarizeInfoArg(ctx, name, &errs)
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					errs = append(errs, err)
				}
				if sum == nil {
					continue
				}
				if asJSON {
					b, err := json.Marshal(sum.toJSON())
					if err != nil {
						return err
					}
					if _, err := out.Write(append(b, '\n')); err != nil {
						return err
					}
					continue
				}
				if printed > 0 {
					fmt.Fprintln(out)
				}
				printed++
				if err := sum.print(out); err != nil {
					return err
				}
			}
			return reportErrors(cmd.ErrOrStderr(), errs)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object a line per FILE or DIR")
	completeRecordings(c)
	return c
}

// infoTopicStats accumulates one topic's row of the table.
type infoTopicStats struct {
	messages  uint64
	bytes     uint64
	min, max  int
	senders   map[netip.AddrPort]bool
	groups    map[netip.AddrPort]bool
	encodings map[string]bool
	schemas   map[string]bool
}

func newInfoTopicStats() *infoTopicStats {
	return &infoTopicStats{senders: map[netip.AddrPort]bool{}, groups: map[netip.AddrPort]bool{},
		encodings: map[string]bool{}, schemas: map[string]bool{}}
}

// merge adds o's counts to s.
func (s *infoTopicStats) merge(o *infoTopicStats) {
	if o.messages > 0 {
		if s.messages == 0 {
			s.min, s.max = o.min, o.max
		} else {
			s.min, s.max = min(s.min, o.min), max(s.max, o.max)
		}
	}
	s.messages += o.messages
	s.bytes += o.bytes
	maps.Copy(s.senders, o.senders)
	maps.Copy(s.groups, o.groups)
	maps.Copy(s.encodings, o.encodings)
	maps.Copy(s.schemas, o.schemas)
}

// infoFile is what info learns of one file.
type infoFile struct {
	path     string
	size     int64
	info     mcap.Info
	damage   error // a *mcap.FormatError inside, or nil
	compress map[string]int
	topics   map[string]*infoTopicStats
}

// summary describes the file's summary section in words.
func (f *infoFile) summary() (key, text string) {
	switch {
	case f.info.FromSummary:
		return "present", "present"
	case errors.Is(f.damage, mcap.ErrTruncated):
		return "not_closed", "missing: recovered by scanning: file was not closed"
	case f.damage != nil:
		return "damaged", "missing: recovered by scanning: file is damaged"
	}
	return "absent", "absent: counted by scanning (written without one)"
}

// scanInfoFile reads a file's summary (or scans it) and its messages.
func scanInfoFile(ctx context.Context, name string) (*infoFile, error) {
	f, err := recording.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	info, infoErr := f.Info()
	if infoErr != nil {
		if _, _, ok := mcapDamage(infoErr); !ok {
			return nil, infoErr // an I/O error, not damage
		}
	}

	// The payload sizes, senders and groups need a pass over the messages.
	stats := map[string]*infoTopicStats{}
	var damage error
	for rec, err := range f.Records(recording.Filter{}) {
		if err != nil {
			damage = err
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := stats[rec.Topic]
		if s == nil {
			s = newInfoTopicStats()
			s.min = len(rec.Payload)
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
		if rec.Encoding != "" {
			s.encodings[rec.Encoding] = true
		}
	}
	if damage == nil {
		damage = infoErr
	}
	if damage != nil {
		if _, _, ok := mcapDamage(damage); !ok {
			return nil, damage
		}
	}
	// Channels without messages still have a row, and give the topic's
	// encodings and schemas.
	for _, ch := range info.Channels {
		t := exactChannelTopic(ch)
		s := stats[t]
		if s == nil {
			s = newInfoTopicStats()
			stats[t] = s
		}
		if ch.MessageEncoding != "" {
			s.encodings[ch.MessageEncoding] = true
		}
		if sc := info.Schemas[ch.SchemaID]; ch.SchemaID != 0 && sc != nil && sc.Name != "" {
			s.schemas[sc.Name] = true
		}
	}
	var compress map[string]int
	if info.ChunkCount > 0 {
		compress = chunkCompressions(name, st.Size())
	}
	return &infoFile{path: name, size: st.Size(), info: info, damage: damage, compress: compress, topics: stats}, nil
}

// infoSummary is one FILE or DIR argument: one file, or the files of a
// directory taken as one recording.
type infoSummary struct {
	path       string
	dir        bool
	files      []*infoFile
	size       int64
	libraries  []string
	profiles   []string
	messages   uint64
	start, end uint64 // log times; valid when messages > 0
	chunks     uint64
	compress   map[string]int
	topics     map[string]*infoTopicStats
}

// infoDirFiles lists the .mcap files of a directory, sorted by name (which
// for mcl record's numbered files is the order they were written in).
func infoDirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".mcap") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, n)); err != nil || st.IsDir() {
			continue
		}
		names = append(names, filepath.Join(dir, n))
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: directory holds no .mcap files", dir)
	}
	return names, nil
}

// summarizeInfoArg describes a FILE or DIR argument. For a directory, the
// errors of files that cannot be read are appended to errs and the others
// summarized; the returned error is for the argument as a whole.
func summarizeInfoArg(ctx context.Context, name string, errs *[]error) (*infoSummary, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		f, err := scanInfoFile(ctx, name)
		if err != nil {
			return nil, err
		}
		return mergeInfoFiles(name, false, []*infoFile{f}), nil
	}
	names, err := infoDirFiles(name)
	if err != nil {
		return nil, err
	}
	var files []*infoFile
	for _, n := range names {
		f, err := scanInfoFile(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			*errs = append(*errs, err)
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, nil
	}
	return mergeInfoFiles(name, true, files), nil
}

func mergeInfoFiles(path string, dir bool, files []*infoFile) *infoSummary {
	s := &infoSummary{path: path, dir: dir, files: files, compress: map[string]int{}, topics: map[string]*infoTopicStats{}}
	for _, f := range files {
		s.size += f.size
		if l := f.info.Library; l != "" && !slices.Contains(s.libraries, l) {
			s.libraries = append(s.libraries, l)
		}
		if p := f.info.Profile; p != "" && !slices.Contains(s.profiles, p) {
			s.profiles = append(s.profiles, p)
		}
		if f.info.MessageCount > 0 {
			if s.messages == 0 {
				s.start, s.end = f.info.MessageStartTime, f.info.MessageEndTime
			} else {
				s.start, s.end = min(s.start, f.info.MessageStartTime), max(s.end, f.info.MessageEndTime)
			}
			s.messages += f.info.MessageCount
		}
		s.chunks += uint64(f.info.ChunkCount)
		for c, n := range f.compress {
			s.compress[c] += n
		}
		for t, ts := range f.topics {
			m := s.topics[t]
			if m == nil {
				m = newInfoTopicStats()
				s.topics[t] = m
			}
			m.merge(ts)
		}
	}
	return s
}

// span is the time between the first and last message.
func (s *infoSummary) span() time.Duration {
	if s.messages == 0 {
		return 0
	}
	return time.Duration(s.end - s.start)
}

func (s *infoSummary) print(out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	field := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...))
	}
	field("path", "%s", s.path)
	if s.dir {
		field("files", "%d", len(s.files))
	}
	field("size", "%d bytes (%s)", s.size, humanSize(s.size))
	field("library", "%s", dashIfEmpty(strings.Join(s.libraries, ", ")))
	if len(s.profiles) > 0 {
		field("profile", "%s", strings.Join(s.profiles, ", "))
	}
	field("messages", "%d", s.messages)
	span := s.span()
	if s.messages > 0 {
		field("duration", "%s", span)
		field("start", "%s (%d)", rfc3339UTC(time.Unix(0, int64(s.start))), s.start)
		field("end", "%s (%d)", rfc3339UTC(time.Unix(0, int64(s.end))), s.end)
	} else {
		field("duration", "-")
		field("start", "-")
		field("end", "-")
	}
	if s.chunks > 0 {
		field("chunks", "%d%s", s.chunks, compressionNote(s.compress))
	} else {
		field("chunks", "0")
	}
	if !s.dir {
		f := s.files[0]
		_, text := f.summary()
		field("summary", "%s", text)
		if f.damage != nil {
			off, reason, _ := mcapDamage(f.damage)
			field("warning", "damaged at offset %d: %s; nothing after it is readable", off, reason)
		}
	} else {
		present := 0
		for _, f := range s.files {
			if f.info.FromSummary {
				present++
			}
		}
		if present == len(s.files) {
			field("summary", "present")
		} else {
			field("summary", "present in %d of %d files (see SUMMARY below)", present, len(s.files))
		}
		for _, f := range s.files {
			if f.damage != nil {
				off, reason, _ := mcapDamage(f.damage)
				field("warning", "%s: damaged at offset %d: %s; nothing after it is readable", filepath.Base(f.path), off, reason)
			}
		}
	}
	field("topics", "%d", len(s.topics))
	if err := tw.Flush(); err != nil {
		return err
	}

	if s.dir {
		fmt.Fprintln(out)
		tw = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tSIZE\tMESSAGES\tSTART\tDURATION\tSUMMARY")
		for _, f := range s.files {
			start, dur := "-", "-"
			if f.info.MessageCount > 0 {
				start = rfc3339UTC(time.Unix(0, int64(f.info.MessageStartTime)))
				dur = time.Duration(f.info.MessageEndTime - f.info.MessageStartTime).String()
			}
			key, _ := f.summary()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", filepath.Base(f.path), f.size, f.info.MessageCount, start, dur, key)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(s.topics) == 0 {
		return nil
	}

	withSchema := false
	for _, t := range s.topics {
		withSchema = withSchema || len(t.schemas) > 0
	}
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	head := "TOPIC\tMESSAGES\tRATE/S\tMIN B\tAVG B\tMAX B\tSENDERS\tGROUP\tENCODING"
	if withSchema {
		head += "\tSCHEMA"
	}
	fmt.Fprintln(tw, head)
	for _, topic := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[topic]
		rate, avg, lo, hi := "-", "-", "-", "-"
		if span > 0 {
			rate = infoRate(float64(t.messages) / span.Seconds())
		}
		if t.messages > 0 {
			avg = fmt.Sprintf("%.1f", float64(t.bytes)/float64(t.messages))
			lo, hi = fmt.Sprint(t.min), fmt.Sprint(t.max)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s", topicLabel(topic), t.messages, rate, lo, avg, hi,
			len(t.senders), dashIfEmpty(strings.Join(addrStrings(t.groups), ",")),
			dashIfEmpty(strings.Join(slices.Sorted(maps.Keys(t.encodings)), ",")))
		if withSchema {
			fmt.Fprintf(tw, "\t%s", dashIfEmpty(strings.Join(slices.Sorted(maps.Keys(t.schemas)), ",")))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func addrStrings(m map[netip.AddrPort]bool) []string {
	s := make([]string, 0, len(m))
	for a := range m {
		s = append(s, a.String())
	}
	slices.Sort(s)
	return s
}

// infoJSON is the --json form of one FILE or DIR argument.
type infoJSON struct {
	Path        string           `json:"path"`
	Kind        string           `json:"kind"` // "file" or "directory"
	Files       []infoFileJSON   `json:"files"`
	Size        int64            `json:"size"`
	Library     string           `json:"library"`
	Profile     string           `json:"profile"`
	Messages    uint64           `json:"messages"`
	Start       *string          `json:"start"`
	StartNs     *uint64          `json:"start_ns"`
	End         *string          `json:"end"`
	EndNs       *uint64          `json:"end_ns"`
	DurationNs  int64            `json:"duration_ns"`
	Chunks      uint64           `json:"chunks"`
	Compression map[string]int   `json:"compression"`
	FromSummary bool             `json:"from_summary"`
	Damage      []infoDamageJSON `json:"damage"`
	Topics      []infoTopicJSON  `json:"topics"`
}

type infoFileJSON struct {
	Path        string          `json:"path"`
	Size        int64           `json:"size"`
	Messages    uint64          `json:"messages"`
	StartNs     *uint64         `json:"start_ns"`
	EndNs       *uint64         `json:"end_ns"`
	Chunks      uint32          `json:"chunks"`
	FromSummary bool            `json:"from_summary"`
	Summary     string          `json:"summary"` // present, absent, not_closed or damaged
	Damage      *infoDamageJSON `json:"damage"`
}

type infoDamageJSON struct {
	Path    string `json:"path"`
	Offset  int64  `json:"offset"`
	Message string `json:"message"`
}

type infoTopicJSON struct {
	Topic       string   `json:"topic"`
	TopicBase64 string   `json:"topic_base64,omitempty"`
	Messages    uint64   `json:"messages"`
	RateHz      *float64 `json:"rate_hz"`
	SizeMin     *int     `json:"size_min"`
	SizeMean    *float64 `json:"size_mean"`
	SizeMax     *int     `json:"size_max"`
	Senders     []string `json:"senders"`
	Groups      []string `json:"groups"`
	Encodings   []string `json:"encodings"`
	Schemas     []string `json:"schemas"`
}

func (s *infoSummary) toJSON() infoJSON {
	j := infoJSON{
		Path: s.path, Kind: "file", Files: []infoFileJSON{}, Size: s.size,
		Library: strings.Join(s.libraries, ", "), Profile: strings.Join(s.profiles, ", "),
		Messages: s.messages, DurationNs: int64(s.span()), Chunks: s.chunks, Compression: s.compress,
		FromSummary: true, Damage: []infoDamageJSON{}, Topics: []infoTopicJSON{},
	}
	if s.dir {
		j.Kind = "directory"
	}
	if s.messages > 0 {
		start, end := rfc3339UTC(time.Unix(0, int64(s.start))), rfc3339UTC(time.Unix(0, int64(s.end)))
		j.Start, j.StartNs, j.End, j.EndNs = &start, &s.start, &end, &s.end
	}
	for _, f := range s.files {
		key, _ := f.summary()
		fj := infoFileJSON{Path: f.path, Size: f.size, Messages: f.info.MessageCount, Chunks: f.info.ChunkCount,
			FromSummary: f.info.FromSummary, Summary: key}
		if f.info.MessageCount > 0 {
			start, end := f.info.MessageStartTime, f.info.MessageEndTime
			fj.StartNs, fj.EndNs = &start, &end
		}
		if f.damage != nil {
			off, reason, _ := mcapDamage(f.damage)
			d := infoDamageJSON{Path: f.path, Offset: off, Message: reason}
			fj.Damage = &d
			j.Damage = append(j.Damage, d)
		}
		j.FromSummary = j.FromSummary && f.info.FromSummary
		j.Files = append(j.Files, fj)
	}
	span := s.span()
	for _, topic := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[topic]
		tj := infoTopicJSON{Topic: topic, Messages: t.messages, Senders: addrStrings(t.senders), Groups: addrStrings(t.groups),
			Encodings: slices.Sorted(maps.Keys(t.encodings)), Schemas: slices.Sorted(maps.Keys(t.schemas))}
		if !utf8.ValidString(topic) {
			tj.Topic = strings.ToValidUTF8(topic, "\uFFFD")
			tj.TopicBase64 = base64.StdEncoding.EncodeToString([]byte(topic))
		}
		if tj.Encodings == nil {
			tj.Encodings = []string{}
		}
		if tj.Schemas == nil {
			tj.Schemas = []string{}
		}
		if span > 0 {
			r := float64(t.messages) / span.Seconds()
			tj.RateHz = &r
		}
		if t.messages > 0 {
			lo, hi, mean := t.min, t.max, float64(t.bytes)/float64(t.messages)
			tj.SizeMin, tj.SizeMax, tj.SizeMean = &lo, &hi, &mean
		}
		j.Topics = append(j.Topics, tj)
	}
	return j
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

// chunkCompressions counts a file's chunks by compression ("zstd", "lz4",
// "none"), by walking the data section's record headers. It is best effort:
// nil if the file cannot be walked.
func chunkCompressions(name string, size int64) map[string]int {
	f, err := os.Open(name)
	if err != nil {
		return nil
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
	return counts
}

// compressionNote names chunk compressions, as " (zstd)" or " (2 zstd,
// 1 none)"; "" for none known.
func compressionNote(counts map[string]int) string {
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
