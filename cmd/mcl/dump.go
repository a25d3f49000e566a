package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/internal/topic"
	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
	"github.com/mcl-go/mcl/wire"
)

func newDumpCmd() *cobra.Command {
	var (
		topics     []string
		format     string
		start, end time.Duration
	)
	c := &cobra.Command{
		Use:   "dump FILE... [--topic T ...] [--format jsonl|csv] [--start D] [--end D]",
		Short: "Print the messages of recordings as JSON lines or CSV",
		Long: `dump prints the messages of one or more MCAP recordings, file after file in
the order given, each file in the order its messages were received.

With --format jsonl (the default) each message is one line of JSON:
  {"log_time":"2026-11-25T14:05:01.123456789Z","topic":"gps","sender":"[fe80::1]:40001","group":"[ff15::c73d:cf41:ea8e:b0a0]:26000","payload":{"lat":-33.89,"lon":151.19}}
log_time is the receive time in RFC 3339 UTC; sender and group are null when
the recording does not know them. The payload is rendered from msgpack as by
"mcl sub" (bytes that are not UTF-8 text as {"$bytes":"<base64>"}; see
docs/cli.md); payloads recorded as JSON are printed as they are.

With --format csv the output is a header line and one row per message. The
columns are log_time, topic, then one per top-level key of the payload maps,
the union over all the selected messages in the order keys are first met (a
payload that is not a map goes in a column named "payload"). Each cell is the
JSON rendering of the value, except that strings are written without quotes;
a key a message lacks leaves its cell empty. dump reads the files twice to
find the columns first.

--start and --end are offsets from the earliest log time in the files (all
topics): --start 10s --end 1m prints what was received from 10 seconds to 1
minute into the recording.

A file damaged by a crash of the recorder (kill -9, power loss) is printed up
to the damage; the damage, with its file offset, is then reported on standard
error and dump goes on with the next file. A payload that cannot be rendered
is skipped with a warning. Either makes the exit status 1.`,
		Example: `  mcl dump rec.mcap
  mcl dump logs/*.mcap --topic gps --topic imu
  mcl dump rec.mcap --format csv --topic gps > gps.csv
  mcl dump rec.mcap --start 1m30s --end 2m`,
		Args: inspectFileArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "csv" {
				return usagef("--format %q: use jsonl or csv", format)
			}
			if start < 0 || end < 0 {
				return usagef("--start and --end must not be negative")
			}
			hasEnd := cmd.Flags().Changed("end")
			if hasEnd && end <= start {
				return usagef("--end %s must be after --start %s", end, start)
			}
			if err := checkTopics(topics); err != nil {
				return err
			}
			if err := checkInputFiles(args); err != nil {
				return err
			}
			files, err := openRecordings(args)
			if err != nil {
				return err
			}
			defer closeRecordings(files)
			if err := topicsPresent(files, topics); err != nil {
				return err
			}

			filter := recording.Filter{Topics: topics}
			if start > 0 || hasEnd {
				if t0, ok := earliestLogTime(files); ok {
					if start > 0 {
						filter.Start = t0.Add(start)
					}
					if hasEnd {
						filter.End = t0.Add(end)
					}
				}
			}
			d := &dumper{cmd: cmd, files: files, filter: filter}
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			if format == "csv" {
				err = d.csv(out)
			} else {
				err = d.jsonl(out)
			}
			if ferr := out.Flush(); err == nil && ferr != nil {
				err = fmt.Errorf("write standard output: %w", ferr)
			}
			if err != nil {
				return err
			}
			if d.skipped > 0 {
				d.errs = append(d.errs, fmt.Errorf("skipped %d messages whose payload could not be rendered", d.skipped))
			}
			return reportErrors(cmd.ErrOrStderr(), d.errs)
		},
	}
	f := c.Flags()
	f.StringArrayVarP(&topics, "topic", "t", nil, "print only this topic; repeat for several (default: all topics)"+topicHelp)
	f.StringVarP(&format, "format", "f", "jsonl", "output format: jsonl (one JSON object a line) or csv")
	f.DurationVar(&start, "start", 0, "skip messages received less than this long after the earliest one in the files, e.g. 1m30s")
	f.DurationVar(&end, "end", 0, "stop before messages received this long after the earliest one, e.g. 2m (default: the end)")
	completeRecordings(c)
	return c
}

// dumper holds the state of one dump run.
type dumper struct {
	cmd     *cobra.Command
	files   []*recording.File
	filter  recording.Filter
	errs    []error // damage, one per damaged file
	skipped int     // messages whose payload did not render
	buf     []byte
}

// each calls fn with the JSON rendering of every selected message's payload,
// file after file. Damage ends a file and is collected in d.errs if report
// is set; so are payloads that do not render, with a warning on standard
// error. flush runs before any warning, so that the output before it is out.
func (d *dumper) each(report bool, flush func() error, fn func(recording.Record, []byte) error) error {
	ctx := d.cmd.Context()
	for _, f := range d.files {
		for rec, err := range f.Records(d.filter) {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if err != nil {
				if report {
					d.errs = append(d.errs, err)
				}
				break
			}
			var perr error
			d.buf, perr = appendPayloadJSON(d.buf[:0], rec.Encoding, rec.Payload)
			if perr != nil {
				if report {
					if err := flush(); err != nil {
						return err
					}
					d.skipped++
					fmt.Fprintf(d.cmd.ErrOrStderr(), "mcl: warning: %s: offset %d: message on topic %s at %s: %v\n",
						f.Name(), rec.Offset, topicLabel(rec.Topic), rfc3339UTC(rec.LogTime), perr)
				}
				continue
			}
			if err := fn(rec, d.buf); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (d *dumper) jsonl(out *bufio.Writer) error {
	var line []byte
	return d.each(true, out.Flush, func(rec recording.Record, payload []byte) error {
		line = append(line[:0], `{"log_time":"`...)
		line = rec.LogTime.UTC().AppendFormat(line, time.RFC3339Nano)
		line = append(line, `","topic":`...)
		line = appendTopicJSON(line, rec.Topic)
		line = append(line, `,"sender":`...)
		line = appendAddrJSON(line, rec.Sender)
		line = append(line, `,"group":`...)
		line = appendAddrJSON(line, rec.Group)
		line = append(line, `,"payload":`...)
		line = append(line, payload...)
		line = append(line, "}\n"...)
		_, err := out.Write(line)
		return err
	})
}

// csvColumn is a payload column: a top-level map key, or the column for
// payloads that are not maps.
type csvColumn struct {
	key    string
	notMap bool
}

func (d *dumper) csv(out *bufio.Writer) error {
	// Pass 1: the columns.
	index := map[csvColumn]int{}
	var cols []csvColumn
	add := func(c csvColumn) int {
		i, ok := index[c]
		if !ok {
			i = len(cols)
			index[c] = i
			cols = append(cols, c)
		}
		return i
	}
	noFlush := func() error { return nil }
	err := d.each(false, noFlush, func(rec recording.Record, payload []byte) error {
		if !payloadIsMap(rec.Encoding, rec.Payload) {
			add(csvColumn{notMap: true})
			return nil
		}
		return jsonMembers(payload, func(key string, _ json.RawMessage) { add(csvColumn{key: key}) })
	})
	if err != nil {
		return err
	}

	// Pass 2: the rows.
	w := csv.NewWriter(out)
	header := []string{"log_time", "topic"}
	for _, c := range cols {
		if c.notMap {
			header = append(header, "payload")
		} else {
			header = append(header, c.key)
		}
	}
	if err := w.Write(header); err != nil {
		return err
	}
	row := make([]string, len(header))
	flush := func() error {
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
		return out.Flush()
	}
	return d.each(true, flush, func(rec recording.Record, payload []byte) error {
		clear(row)
		row[0] = rfc3339UTC(rec.LogTime)
		row[1] = topicCell(rec.Topic)
		set := func(c csvColumn, v json.RawMessage) {
			if i, ok := index[c]; ok { // always, unless the file changed between passes
				row[2+i] = jsonCSVCell(v)
			}
		}
		if !payloadIsMap(rec.Encoding, rec.Payload) {
			set(csvColumn{notMap: true}, payload)
		} else if err := jsonMembers(payload, func(key string, v json.RawMessage) { set(csvColumn{key: key}, v) }); err != nil {
			return err
		}
		return w.Write(row)
	})
}

// payloadIsMap reports whether a payload is a map: a msgpack map, or a JSON
// object other than the {"$bytes":...} and {"$ext":...,"$bytes":...} that
// stand for msgpack bytes and ext values in payloads converted to JSON.
func payloadIsMap(encoding string, payload []byte) bool {
	if encoding != "json" {
		return len(payload) > 0 && msgp.NextType(payload) == msgp.MapType
	}
	p := bytes.TrimLeft(payload, " \t\r\n")
	if len(p) == 0 || p[0] != '{' {
		return false
	}
	var keys []string
	if jsonMembers(p, func(key string, _ json.RawMessage) { keys = append(keys, key) }) != nil {
		return true
	}
	wrapped := slices.Equal(keys, []string{"$bytes"}) || slices.Equal(keys, []string{"$ext", "$bytes"})
	return !wrapped
}

// jsonMembers calls fn for each member of the JSON object obj, in order,
// duplicates included.
func jsonMembers(obj []byte, fn func(key string, value json.RawMessage)) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // '{'
		return fmt.Errorf("payload object: %w", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("payload object: %w", err)
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("payload object: %w", err)
		}
		fn(key, v)
	}
	return nil
}

// jsonCSVCell is a CSV cell: the JSON value, strings without their quotes.
func jsonCSVCell(v json.RawMessage) string {
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(v)
}

// appendPayloadJSON appends the compact JSON rendering of a payload recorded
// with the given message encoding: msgpack (mcl's own) through msgjson, or
// JSON (as written by mcl convert) as it is, compacted. The payload must be
// exactly one value.
func appendPayloadJSON(dst []byte, encoding string, payload []byte) ([]byte, error) {
	switch encoding {
	case "msgpack":
		out, rest, err := msgjson.ToJSON(dst, payload)
		if err != nil {
			return dst, fmt.Errorf("payload is not msgpack: %w", err)
		}
		if len(rest) > 0 {
			return dst, fmt.Errorf("payload is not msgpack: %d bytes after the first value", len(rest))
		}
		return out, nil
	case "json":
		buf := bytes.NewBuffer(dst)
		if err := json.Compact(buf, payload); err != nil {
			return dst, fmt.Errorf("payload is not JSON: %w", err)
		}
		return buf.Bytes(), nil
	}
	return dst, fmt.Errorf("message encoding %q: mcl reads msgpack and json", encoding)
}

// appendTopicJSON renders a topic as "mcl sub" does: a JSON string, or
// {"$bytes":...} when it is not UTF-8.
func appendTopicJSON(dst []byte, topic string) []byte {
	out, _, err := msgjson.ToJSON(dst, wire.AppendStr(nil, []byte(topic)))
	if err != nil { // cannot happen: a str header over its own bytes
		return strconv.AppendQuote(dst, topic)
	}
	return out
}

// topicCell is a topic as a CSV cell: the topic itself, or its
// {"$bytes":...} rendering when it is not UTF-8.
func topicCell(topic string) string {
	if utf8.ValidString(topic) {
		return topic
	}
	return string(appendTopicJSON(nil, topic))
}

// topicLabel is a topic for messages and tables: as it is when that is
// unambiguous, else quoted.
func topicLabel(topic string) string {
	if topic == "" || !utf8.ValidString(topic) {
		return strconv.Quote(topic)
	}
	for _, r := range topic {
		if r == ' ' || r == '"' || !strconv.IsPrint(r) {
			return strconv.Quote(topic)
		}
	}
	return topic
}

func appendAddrJSON(dst []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = a.AppendTo(dst)
	return append(dst, '"')
}

func rfc3339UTC(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// inspectFileArgs requires at least one FILE argument.
func inspectFileArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return usagef("no FILE given (see mcl %s --help)", cmd.CommandPath())
	}
	return nil
}

// checkInputFiles reports files that do not exist, or are directories, as usage
// errors, before anything is printed.
func checkInputFiles(names []string) error {
	for _, name := range names {
		st, err := os.Stat(name)
		if errors.Is(err, os.ErrNotExist) {
			return usagef("%s: no such file", name)
		}
		if err != nil {
			return err
		}
		if st.IsDir() {
			return usagef("%s is a directory: name the .mcap files in it, e.g. %s/*.mcap", name, name)
		}
	}
	return nil
}

// checkOutputFile reports, as a usage error, an output file that would
// overwrite the input in, is a directory, or exists without force.
func checkOutputFile(in, out string, force bool) error {
	ist, err := os.Stat(in)
	if err != nil {
		return err
	}
	ost, err := os.Stat(out)
	switch {
	case err != nil:
		return nil // nothing there yet, or the write will say why
	case os.SameFile(ist, ost):
		return usagef("output %s is the input file", out)
	case ost.IsDir():
		return usagef("output %s is a directory", out)
	case !force:
		return usagef("output %s exists: use --force to replace it", out)
	}
	return nil
}

func openRecordings(names []string) ([]*recording.File, error) {
	var files []*recording.File
	for _, name := range names {
		f, err := recording.Open(name)
		if err != nil {
			closeRecordings(files)
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func closeRecordings(files []*recording.File) {
	for _, f := range files {
		f.Close()
	}
}

// earliestLogTime is the earliest log time in the files.
func earliestLogTime(files []*recording.File) (time.Time, bool) {
	var first uint64
	found := false
	for _, f := range files {
		info, _ := f.Info() // on damage, what is before it; dump reports the damage
		if info.MessageCount > 0 && (!found || info.MessageStartTime < first) {
			first, found = info.MessageStartTime, true
		}
	}
	return time.Unix(0, int64(first)), found
}

// topicsPresent returns an error, exit status 1, for a --topic that no
// topic of files is or matches, listing the topics they have: a name
// mistyped then says so, instead of printing nothing.
func topicsPresent(files []*recording.File, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, f := range files {
		info, _ := f.Info() // on damage, what is before it
		for _, ch := range info.Channels {
			t := ch.Topic
			if raw, err := base64.StdEncoding.DecodeString(ch.Metadata[recording.MetaTopicBase64]); err == nil && len(raw) > 0 {
				t = string(raw)
			}
			have[t] = true
		}
	}
	for _, want := range topics {
		f, err := topic.NewFilter([]string{want})
		if err != nil {
			return usagef("--topic: %v", err)
		}
		found := false
		for t := range have {
			if f.MatchString(t) {
				found = true
				break
			}
		}
		if !found {
			return &exitError{1, fmt.Errorf("no topic %s in %s; %s", strconv.Quote(want), fileList(files), topicList(have))}
		}
	}
	return nil
}

func fileList(files []*recording.File) string {
	if len(files) == 1 {
		return files[0].Name()
	}
	return fmt.Sprintf("%d files", len(files))
}

// topicList names the topics of have, sorted, at most 20.
func topicList(have map[string]bool) string {
	if len(have) == 0 {
		return "they have no messages"
	}
	names := slices.Sorted(maps.Keys(have))
	var b strings.Builder
	b.WriteString("topics there: ")
	for i, t := range names {
		if i == 20 {
			fmt.Fprintf(&b, " and %d more", len(names)-20)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(t))
	}
	return b.String()
}

// reportErrors writes all but the last of errs to w, one a line in run's
// format, and returns the last as an exit status 1; nil without errors.
func reportErrors(w io.Writer, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs[:len(errs)-1] {
		fmt.Fprintln(w, "mcl:", err)
	}
	return &exitError{1, errs[len(errs)-1]}
}

// mcapDamage returns the file offset of MCAP damage in err.
func mcapDamage(err error) (int64, string, bool) {
	var fe *mcap.FormatError
	if errors.As(err, &fe) {
		return fe.Offset, fe.Reason, true
	}
	return 0, "", false
}
