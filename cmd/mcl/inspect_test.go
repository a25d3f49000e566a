package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
)

var (
	inspGroup   = netip.MustParseAddrPort("[ff15::c73d:cf41:ea8e:b0a0]:26000")
	inspSenderA = netip.MustParseAddrPort("[fe80::1]:40001")
	inspSenderB = netip.MustParseAddrPort("192.0.2.7:40002")
	inspT0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// inspMsg is a message to record. A map payload is given as its members
// (key, JSON value) so that tests know the expected CSV cells without
// parsing; other payloads as raw msgpack.
type inspMsg struct {
	topic   string
	at      time.Duration // after inspT0
	sender  netip.AddrPort
	members [][2]string
	raw     []byte
}

func (m inspMsg) payload(t *testing.T) []byte {
	t.Helper()
	if m.members == nil {
		return m.raw
	}
	var parts []string
	for _, kv := range m.members {
		parts = append(parts, strconv.Quote(kv[0])+":"+kv[1])
	}
	return inspPack(t, "{"+strings.Join(parts, ",")+"}")
}

func inspPack(t *testing.T, s string) []byte {
	t.Helper()
	b, err := msgjson.FromJSON(nil, []byte(s))
	if err != nil {
		t.Fatalf("FromJSON(%s): %v", s, err)
	}
	return b
}

func inspRender(t *testing.T, payload []byte) string {
	t.Helper()
	b, rest, err := msgjson.ToJSON(nil, payload)
	if err != nil || len(rest) > 0 {
		t.Fatalf("ToJSON: %v, %d bytes left", err, len(rest))
	}
	return string(b)
}

// inspSampleMsgs is a recording of 10 gps, 20 imu, 3 raw (not maps) and 1
// message on a topic that is not UTF-8, interleaved in receive order over
// 0.95 s.
func inspSampleMsgs(t *testing.T) []inspMsg {
	t.Helper()
	var msgs []inspMsg
	for i := range 10 {
		msgs = append(msgs, inspMsg{topic: "gps", at: time.Duration(i) * 100 * time.Millisecond, sender: inspSenderA,
			members: [][2]string{{"lat", fmt.Sprintf("%.2f", -33.89+float64(i))}, {"lon", "151.19"}, {"fix", "true"}}})
	}
	for i := range 20 {
		m := inspMsg{topic: "imu", at: time.Duration(i)*50*time.Millisecond + 10*time.Millisecond, sender: inspSenderA,
			members: [][2]string{{"ax", strconv.Itoa(i)}, {"note", `"a,b \"q\""`}}}
		if i%2 == 1 {
			m.sender = inspSenderB
			m.members = append(m.members, [2]string{"lat", "1.5"}) // a key gps has too
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs,
		inspMsg{topic: "raw", at: 333 * time.Millisecond, sender: inspSenderB, raw: inspPack(t, `"hello, world"`)},
		inspMsg{topic: "raw", at: 444 * time.Millisecond, sender: inspSenderB, raw: inspPack(t, `[1, {"x": null}]`)},
		inspMsg{topic: "raw", at: 555 * time.Millisecond, sender: inspSenderB, raw: msgp.AppendBytes(nil, []byte{0xff, 0, 1})},
		inspMsg{topic: "bad\xff", at: 666 * time.Millisecond, sender: inspSenderA, raw: inspPack(t, `7`)},
	)
	slices.SortStableFunc(msgs, func(a, b inspMsg) int { return int(a.at - b.at) })
	return msgs
}

// inspRecord writes msgs to a new recording at path, flushing after the first
// flushAfter messages (0: never) and calling onFlush then.
func inspRecord(t *testing.T, path string, msgs []inspMsg, flushAfter int, onFlush func()) {
	t.Helper()
	rec, err := recording.Create(path, recording.Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if i == flushAfter && flushAfter > 0 {
			if err := rec.Flush(); err != nil {
				t.Fatal(err)
			}
			onFlush()
		}
		err := rec.Write(inspGroup, &mcl.Message{Topic: m.topic, Payload: m.payload(t), Sender: m.sender, Received: inspT0.Add(m.at)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
}

func inspSampleFile(t *testing.T) (string, []inspMsg) {
	t.Helper()
	msgs := inspSampleMsgs(t)
	path := filepath.Join(t.TempDir(), "rec.mcap")
	inspRecord(t, path, msgs, 0, nil)
	return path, msgs
}

// inspCrashFile records msgs but keeps, as a kill -9 after the first flush
// would, only the bytes flushed after the first n messages plus cut more.
// It returns the copy's path and the offset where the intact part ends.
func inspCrashFile(t *testing.T, msgs []inspMsg, n int, cut int64) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rec.mcap")
	var flushed []byte
	inspRecord(t, path, msgs, n, func() {
		var err error
		if flushed, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	})
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(full, flushed) || int64(len(flushed))+cut > int64(len(full)) {
		t.Fatalf("flushed %d bytes, file has %d", len(flushed), len(full))
	}
	crash := filepath.Join(dir, "crash.mcap")
	if err := os.WriteFile(crash, full[:int64(len(flushed))+cut], 0o644); err != nil {
		t.Fatal(err)
	}
	return crash, int64(len(flushed))
}

// inspInfoFields parses the "key: value" lines of mcl info, up to the table.
func inspInfoFields(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("info line %q", line)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// inspInfoTable parses the topic table of mcl info: topic → columns.
func inspInfoTable(t *testing.T, out string) map[string][]string {
	t.Helper()
	_, table, ok := strings.Cut(out, "\nTOPIC ")
	if !ok {
		t.Fatalf("no topic table in:\n%s", out)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) != 9 && len(f) != 10 { // 10 with a SCHEMA column
			t.Fatalf("table row %q", line)
		}
		rows[f[0]] = f[1:]
	}
	return rows
}

func TestInfo(t *testing.T) {
	path, msgs := inspSampleFile(t)
	r := mcl_(context.Background(), "", "info", path)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("info: %+v", r)
	}
	t.Logf("\n%s", r.stdout)
	f := inspInfoFields(t, r.stdout)
	st, _ := os.Stat(path)
	last := inspT0.Add(msgs[len(msgs)-1].at)
	want := map[string]string{
		"path":     path,
		"library":  "mcl",
		"messages": strconv.Itoa(len(msgs)),
		"duration": msgs[len(msgs)-1].at.String(),
		"start":    fmt.Sprintf("2026-01-02T03:04:05Z (%d)", inspT0.UnixNano()),
		"end":      fmt.Sprintf("%s (%d)", last.Format(time.RFC3339Nano), last.UnixNano()),
		"chunks":   "1 (zstd)",
		"summary":  "present",
		"topics":   "4",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s: %q, want %q", k, f[k], v)
		}
	}
	if !strings.HasPrefix(f["size"], strconv.FormatInt(st.Size(), 10)+" bytes") {
		t.Errorf("size: %q, file has %d bytes", f["size"], st.Size())
	}
	if _, ok := f["warning"]; ok {
		t.Errorf("warning on an intact file: %s", f["warning"])
	}

	rows := inspInfoTable(t, r.stdout)
	group := inspGroup.String()
	// topic: messages, rate, min, avg, max, senders, group, encoding
	wantRows := map[string][]string{
		"gps":       {"10", "10.4", "32", "32.0", "32", "1", group, "msgpack"},
		"imu":       {"20", "20.8", "18", "24.5", "31", "2", group, "msgpack"},
		"raw":       {"3", "3.12", "5", "8.0", "13", "1", group, "msgpack"},
		`"bad\xff"`: {"1", "1.04", "1", "1.0", "1", "1", group, "msgpack"},
	}
	for topic, w := range wantRows {
		if got := rows[topic]; !slices.Equal(got, w) {
			t.Errorf("topic %s: %q, want %q", topic, got, w)
		}
	}
	if len(rows) != len(wantRows) {
		t.Errorf("rows %q", rows)
	}
	// The sizes are those of the payloads written.
	sizes := map[string][]int{}
	for _, m := range msgs {
		sizes[m.topic] = append(sizes[m.topic], len(m.payload(t)))
	}
	if g := sizes["gps"]; slices.Min(g) != 32 || slices.Max(g) != 32 {
		t.Errorf("gps payload sizes %v", g)
	}
	if g := sizes["imu"]; slices.Min(g) != 18 || slices.Max(g) != 31 {
		t.Errorf("imu payload sizes %v", g)
	}

	// Several files: one block each.
	r = mcl_(context.Background(), "", "info", path, path)
	if r.code != 0 || strings.Count(r.stdout, "summary:") != 2 {
		t.Errorf("info on two files: %+v", r)
	}
}

func TestInfoTruncated(t *testing.T) {
	msgs := inspSampleMsgs(t)
	for _, tc := range []struct {
		name   string
		cut    int64
		reason string
	}{
		{"at a chunk boundary", 0, "without a Data End record"},
		{"mid-chunk", 50, "runs past the end of the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, intact := inspCrashFile(t, msgs, 20, tc.cut)
			r := mcl_(context.Background(), "", "info", path)
			t.Logf("\n%s", r.stdout)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("info: %+v", r)
			}
			f := inspInfoFields(t, r.stdout)
			if f["messages"] != "20" {
				t.Errorf("messages %q, want the 20 flushed", f["messages"])
			}
			if f["summary"] != "missing: recovered by scanning: file was not closed" {
				t.Errorf("summary %q", f["summary"])
			}
			if w := f["warning"]; !strings.Contains(w, fmt.Sprintf("offset %d:", intact)) || !strings.Contains(w, tc.reason) {
				t.Errorf("warning %q, want offset %d and %q", w, intact, tc.reason)
			}
			var n int
			for _, row := range inspInfoTable(t, r.stdout) {
				c, _ := strconv.Atoi(row[0])
				n += c
			}
			if n != 20 {
				t.Errorf("table counts %d messages", n)
			}

			// dump prints the intact messages, then the damage.
			r = mcl_(context.Background(), "", "dump", path)
			if r.code != 1 || strings.Count(r.stdout, "\n") != 20 || !strings.Contains(r.stderr, fmt.Sprintf("offset %d:", intact)) {
				t.Errorf("dump: code %d, %d lines, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
			}
			r = mcl_(context.Background(), "", "dump", "--format", "csv", path)
			if r.code != 1 || strings.Count(r.stdout, "\n") != 21 || !strings.Contains(r.stderr, fmt.Sprintf("offset %d:", intact)) {
				t.Errorf("dump csv: code %d, %d lines, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
			}

			// convert makes a complete file of them.
			out := filepath.Join(t.TempDir(), "out.mcap")
			r = mcl_(context.Background(), "", "convert", path, "-o", out)
			if r.code != 1 || !strings.Contains(r.stderr, fmt.Sprintf("offset %d:", intact)) || !strings.Contains(r.stderr, "holds the 20 messages") {
				t.Errorf("convert: %+v", r)
			}
			r = mcl_(context.Background(), "", "info", out)
			if f := inspInfoFields(t, r.stdout); r.code != 0 || f["messages"] != "20" || f["summary"] != "present" {
				t.Errorf("info on the converted file: %+v", r)
			}
		})
	}
}

func TestInfoErrors(t *testing.T) {
	dir := t.TempDir()
	notMCAP := filepath.Join(dir, "notes.txt")
	os.WriteFile(notMCAP, []byte("not a recording at all"), 0o644)
	good, _ := inspSampleFile(t)

	r := mcl_(context.Background(), "", "info", notMCAP)
	if r.code != 1 || !strings.Contains(r.stderr, "notes.txt") || !strings.Contains(r.stderr, "magic") {
		t.Errorf("info on a text file: %+v", r)
	}
	// The readable file is still described.
	r = mcl_(context.Background(), "", "info", good, notMCAP)
	if r.code != 1 || inspInfoFields(t, r.stdout)["messages"] != "34" || !strings.Contains(r.stderr, "magic") {
		t.Errorf("info on a good and a bad file: %+v", r)
	}
}

// inspLine is one line of mcl dump.
type inspLine struct {
	LogTime string          `json:"log_time"`
	Topic   json.RawMessage `json:"topic"`
	Sender  *string         `json:"sender"`
	Group   *string         `json:"group"`
	Payload json.RawMessage `json:"payload"`
}

func inspParseJSONL(t *testing.T, out string) []inspLine {
	t.Helper()
	var lines []inspLine
	for _, s := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if s == "" {
			continue
		}
		var l inspLine
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %q: %v", s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

func inspTopicJSON(topic string) string {
	if topic == "bad\xff" {
		return `{"$bytes":"YmFk/w=="}`
	}
	return strconv.Quote(topic)
}

// inspCheckLines compares dump's lines with the messages expected.
func inspCheckLines(t *testing.T, lines []inspLine, want []inspMsg) {
	t.Helper()
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, m := range want {
		l := lines[i]
		if l.LogTime != inspT0.Add(m.at).Format(time.RFC3339Nano) || string(l.Topic) != inspTopicJSON(m.topic) {
			t.Errorf("line %d: time %s topic %s, want %s %s", i, l.LogTime, l.Topic, inspT0.Add(m.at).Format(time.RFC3339Nano), m.topic)
		}
		if l.Sender == nil || *l.Sender != m.sender.String() || l.Group == nil || *l.Group != inspGroup.String() {
			t.Errorf("line %d: sender %v group %v", i, l.Sender, l.Group)
		}
		if got, w := string(l.Payload), inspRender(t, m.payload(t)); got != w {
			t.Errorf("line %d: payload %s, want %s", i, got, w)
		}
	}
}

func TestDumpJSONL(t *testing.T) {
	path, msgs := inspSampleFile(t)
	r := mcl_(context.Background(), "", "dump", path)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("dump: %+v", r)
	}
	inspCheckLines(t, inspParseJSONL(t, r.stdout), msgs)
	if !strings.Contains(r.stdout, `"payload":{"$bytes":"/wAB"}`) {
		t.Errorf("bin payload not rendered as $bytes:\n%s", r.stdout)
	}

	// Two files: one after the other.
	r = mcl_(context.Background(), "", "dump", path, path)
	if r.code != 0 {
		t.Fatalf("dump: %+v", r)
	}
	inspCheckLines(t, inspParseJSONL(t, r.stdout), append(slices.Clone(msgs), msgs...))
}

func TestDumpFilter(t *testing.T) {
	path, msgs := inspSampleFile(t)
	pick := func(keep func(inspMsg) bool) []inspMsg {
		var out []inspMsg
		for _, m := range msgs {
			if keep(m) {
				out = append(out, m)
			}
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []inspMsg
	}{
		{[]string{"--topic", "gps"}, pick(func(m inspMsg) bool { return m.topic == "gps" })},
		{[]string{"-t", "gps", "-t", "raw"}, pick(func(m inspMsg) bool { return m.topic == "gps" || m.topic == "raw" })},
		{[]string{"--topic", "*"}, msgs}, // every topic here has one segment
		{[]string{"--start", "200ms", "--end", "500ms"}, pick(func(m inspMsg) bool {
			return m.at >= 200*time.Millisecond && m.at < 500*time.Millisecond
		})},
		{[]string{"--start", "600ms"}, pick(func(m inspMsg) bool { return m.at >= 600*time.Millisecond })},
		{[]string{"--end", "100ms", "--topic", "imu"}, pick(func(m inspMsg) bool { return m.topic == "imu" && m.at < 100*time.Millisecond })},
		{[]string{"--start", "1h"}, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := mcl_(context.Background(), "", append([]string{"dump", path}, tc.args...)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("dump: %+v", r)
			}
			inspCheckLines(t, inspParseJSONL(t, r.stdout), tc.want)
		})
	}
}

// TestDumpNoSuchTopic: a --topic that nothing in the file is or matches
// fails, naming the topics the file has.
func TestDumpNoSuchTopic(t *testing.T) {
	path, _ := inspSampleFile(t)
	r := mcl_(context.Background(), "", "dump", path, "--topic", "gps", "--topic", "nope/*")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, `no topic "nope/*" in `) || !strings.Contains(r.stderr, `"gps"`) || !strings.Contains(r.stderr, `"imu"`) {
		t.Fatalf("dump --topic nope/*: %+v", r)
	}
}

func TestDumpCSV(t *testing.T) {
	path, msgs := inspSampleFile(t)
	for _, tc := range []struct {
		name   string
		args   []string
		topics []string
		header []string
	}{
		{"all", nil, nil, []string{"log_time", "topic", "lat", "lon", "fix", "ax", "note", "payload"}},
		{"imu", []string{"--topic", "imu"}, []string{"imu"}, []string{"log_time", "topic", "ax", "note", "lat"}},
		{"raw", []string{"--topic", "raw"}, []string{"raw"}, []string{"log_time", "topic", "payload"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mcl_(context.Background(), "", append([]string{"dump", path, "--format", "csv"}, tc.args...)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("dump: %+v", r)
			}
			rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll() // also checks that rows align
			if err != nil {
				t.Fatalf("%v in:\n%s", err, r.stdout)
			}
			if !slices.Equal(rows[0], tc.header) {
				t.Fatalf("header %q, want %q", rows[0], tc.header)
			}
			col := map[string]int{}
			for i, h := range rows[0] {
				col[h] = i
			}
			var want []inspMsg
			for _, m := range msgs {
				if tc.topics == nil || slices.Contains(tc.topics, m.topic) {
					want = append(want, m)
				}
			}
			if len(rows)-1 != len(want) {
				t.Fatalf("%d rows, want %d", len(rows)-1, len(want))
			}
			for i, m := range want {
				row := rows[i+1]
				wantRow := make([]string, len(tc.header))
				wantRow[0] = inspT0.Add(m.at).Format(time.RFC3339Nano)
				wantRow[1] = m.topic
				if m.topic == "bad\xff" {
					wantRow[1] = `{"$bytes":"YmFk/w=="}`
				}
				if m.members == nil {
					wantRow[col["payload"]] = inspCSVCell(t, m.raw)
				}
				for _, kv := range m.members {
					wantRow[col[kv[0]]] = inspCSVCell(t, inspPack(t, kv[1]))
				}
				if !slices.Equal(row, wantRow) {
					t.Errorf("row %d: %q, want %q", i, row, wantRow)
				}
			}
			if tc.name == "all" && !strings.Contains(r.stdout, `,"a,b ""q""",`) {
				t.Errorf("string cell not quoted as CSV wants:\n%s", r.stdout)
			}
		})
	}
}

// inspCSVCell renders one msgpack value as dump's CSV cells should hold it.
func inspCSVCell(t *testing.T, v []byte) string {
	s := inspRender(t, v)
	if strings.HasPrefix(s, `"`) {
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	return s
}

func TestDumpUsage(t *testing.T) {
	path, _ := inspSampleFile(t)
	missing := filepath.Join(t.TempDir(), "missing.mcap")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"dump"}, "no FILE given"},
		{[]string{"dump", missing}, "missing.mcap: no such file"},
		{[]string{"dump", path, missing}, "missing.mcap: no such file"},
		{[]string{"dump", t.TempDir()}, "is a directory"},
		{[]string{"dump", path, "--format", "xml"}, `--format "xml": use jsonl or csv`},
		{[]string{"dump", path, "--start", "-1s"}, "must not be negative"},
		{[]string{"dump", path, "--start", "2s", "--end", "1s"}, "--end 1s must be after --start 2s"},
		{[]string{"dump", path, "--start", "soon"}, "invalid argument"},
		{[]string{"dump", path, "--bogus"}, "unknown flag"},
		{[]string{"info"}, "no FILE given"},
		{[]string{"info", missing}, "missing.mcap: no such file"},
	} {
		r := mcl_(context.Background(), "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) || r.stdout != "" {
			t.Errorf("mcl %q: %+v; want exit 2 and %q", tc.args, r, tc.msg)
		}
	}
}

func TestConvert(t *testing.T) {
	path, msgs := inspSampleFile(t)
	out := filepath.Join(t.TempDir(), "out.mcap")
	r := mcl_(context.Background(), "", "convert", path, "--encoding", "json", "-o", out)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("convert: %+v", r)
	}
	if !strings.Contains(r.stdout, "34 messages on 5 channels") {
		t.Errorf("convert said %q", r.stdout)
	}

	// Every message, its times and sequence as in the input, its payload the
	// rendering of the original, on a json channel with the same metadata
	// and its topic's JSON schema, which Foxglove reads and the message is
	// valid against.
	in, outMsgs := inspReadMCAP(t, path), inspReadMCAP(t, out)
	if len(in) != len(msgs) || len(outMsgs) != len(in) {
		t.Fatalf("%d messages in, %d out, %d written", len(in), len(outMsgs), len(msgs))
	}
	for i := range in {
		a, b := in[i], outMsgs[i]
		if a.Channel.MessageEncoding != "msgpack" || b.Channel.MessageEncoding != "json" || b.Schema == nil ||
			b.Schema.Encoding != "jsonschema" || b.Schema.Name != b.Channel.Topic {
			t.Fatalf("message %d: encodings %q → %q, schema %+v", i, a.Channel.MessageEncoding, b.Channel.MessageEncoding, b.Schema)
		}
		if err := mcapcheck.FoxgloveSchema(b.Schema.Data); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if err := mcapcheck.ValidJSON(b.Schema.Data, b.Message.Data); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if a.Channel.Topic != b.Channel.Topic || fmt.Sprint(a.Channel.Metadata) != fmt.Sprint(b.Channel.Metadata) {
			t.Errorf("message %d: channel %+v → %+v", i, a.Channel, b.Channel)
		}
		am, bm := a.Message, b.Message
		if am.LogTime != bm.LogTime || am.PublishTime != bm.PublishTime || am.Sequence != bm.Sequence || bm.Sequence == 0 {
			t.Errorf("message %d: %d/%d/%d → %d/%d/%d", i, am.LogTime, am.PublishTime, am.Sequence, bm.LogTime, bm.PublishTime, bm.Sequence)
		}
		want, err := msgjson.ToFoxgloveJSON(nil, msgs[i].payload(t), nil)
		if err != nil || !json.Valid(bm.Data) || string(bm.Data) != string(want) {
			t.Errorf("message %d: payload %s, want %s (%v)", i, bm.Data, want, err)
		}
	}
	// Through the recording API too.
	f, err := recording.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for rec, err := range f.Records(recording.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if rec.Encoding != "json" || rec.Topic != msgs[n].topic || rec.Sender != msgs[n].sender || rec.Group != inspGroup {
			t.Errorf("record %d: %+v", n, rec)
		}
		n++
	}
	if info, err := f.Info(); err != nil || !info.FromSummary || info.MessageCount != uint64(len(msgs)) || info.ChunkCount == 0 {
		t.Errorf("info %+v, %v", info, err)
	}
	if r := mcl_(context.Background(), "", "info", out); !strings.Contains(r.stdout, "(zstd)") {
		t.Errorf("converted file not zstd compressed:\n%s", r.stdout)
	}

	// dump reads the JSON file as it reads the msgpack one, where the JSON
	// for Foxglove is that of mcl sub: maps without binary data (the raw
	// topic's are wrapped as {"data":...}).
	d1 := mcl_(context.Background(), "", "dump", "-t", "gps", "-t", "imu", path)
	d2 := mcl_(context.Background(), "", "dump", "-t", "gps", "-t", "imu", out)
	if d2.code != 0 || d1.stdout != d2.stdout {
		t.Errorf("dump of the converted file differs:\n%s\n%s", d1.stdout, d2.stdout)
	}
	c1 := mcl_(context.Background(), "", "dump", "--format", "csv", "-t", "gps", "-t", "imu", path)
	c2 := mcl_(context.Background(), "", "dump", "--format", "csv", "-t", "gps", "-t", "imu", out)
	if c2.code != 0 || c1.stdout != c2.stdout {
		t.Errorf("csv dump of the converted file differs:\n%s\n%s", c1.stdout, c2.stdout)
	}

	// An existing output is kept unless --force.
	before, _ := os.ReadFile(out)
	os.WriteFile(out, []byte("precious"), 0o644)
	r = mcl_(context.Background(), "", "convert", path, "-o", out)
	if got, _ := os.ReadFile(out); r.code != 2 || !strings.Contains(r.stderr, "exists: use --force") || string(got) != "precious" {
		t.Errorf("convert over an existing file: %+v", r)
	}
	r = mcl_(context.Background(), "", "convert", path, "-o", out, "--force")
	if got, _ := os.ReadFile(out); r.code != 0 || !bytes.Equal(got, before) {
		t.Errorf("convert --force: %+v", r)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// The reference reader agrees. (validate.mjs compares each channel's
	// Statistics count with the count of its topic, so it rejects valid
	// files with several channels, here senders, on one topic: give each
	// sender its own topic.)
	for i := range msgs {
		if msgs[i].sender == inspSenderB {
			msgs[i].topic += "/b"
		}
	}
	single := filepath.Join(t.TempDir(), "single.mcap")
	inspRecord(t, single, msgs, 0, nil)
	out2 := filepath.Join(t.TempDir(), "single.json.mcap")
	if r := mcl_(context.Background(), "", "convert", single, "-o", out2); r.code != 0 {
		t.Fatalf("convert: %+v", r)
	}
	// It also checks every message against its schema (one per topic).
	v := mcapcheck.Validate(t, out2)
	if v.Library != "mcl" || v.Messages != len(msgs) || v.Chunks == 0 || v.JSONMessages != len(msgs) || v.Schemas != 5 {
		t.Errorf("validator: %+v", v)
	}
}

func inspReadMCAP(t *testing.T, path string) []mcap.MessageView {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	r, err := mcap.NewReader(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []mcap.MessageView
	for mv, err := range r.Messages(mcap.ReadOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mv)
	}
	return out
}

// inspValidate checks a file with the reference TypeScript reader.
func inspValidate(t *testing.T, path string, messages int) {
	t.Helper()
	v := mcapcheck.Validate(t, path)
	if v.Library != "mcl" || v.Messages != messages || v.Chunks == 0 || !slices.Equal(v.Compression, []string{"zstd"}) {
		t.Errorf("validator: %+v", v)
	}
}

func TestConvertUsage(t *testing.T) {
	path, _ := inspSampleFile(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.mcap")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"convert", path, "--encoding", "xml", "-o", out}, `--encoding "xml": only json is supported`},
		{[]string{"convert", "-o", out}, "convert takes one FILE, got 0"},
		{[]string{"convert", path, path, "-o", out}, "convert takes one FILE, got 2"},
		{[]string{"convert", path}, "--output (-o) is required"},
		{[]string{"convert", filepath.Join(dir, "missing.mcap"), "-o", out}, "missing.mcap: no such file"},
		{[]string{"convert", path, "-o", path, "--force"}, "is the input file"},
		{[]string{"convert", path, "-o", dir, "--force"}, "is a directory"},
	} {
		r := mcl_(context.Background(), "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("mcl %q: %+v; want exit 2 and %q", tc.args, r, tc.msg)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a usage error wrote the output")
	}
}

func TestConvertFailure(t *testing.T) {
	// A file that is not MCAP: exit 1, nothing written.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.mcap")
	os.WriteFile(bad, []byte("nope"), 0o644)
	out := filepath.Join(dir, "out.mcap")
	r := mcl_(context.Background(), "", "convert", bad, "-o", out)
	if r.code != 1 || !strings.Contains(r.stderr, "bad.mcap") {
		t.Errorf("convert of a text file: %+v", r)
	}
	// A payload that is not msgpack is skipped with a warning; the rest is converted.
	src := filepath.Join(dir, "src.mcap")
	fw, _ := os.Create(src)
	w, _ := mcap.NewWriter(fw, mcap.WriterOptions{Chunked: true})
	ch, _ := w.AddChannel(0, "t", "msgpack", nil)
	w.WriteMessage(mcap.Message{Channel: ch, Sequence: 1, LogTime: 1, PublishTime: 1, Data: inspPack(t, `{"a":1}`)})
	w.WriteMessage(mcap.Message{Channel: ch, Sequence: 2, LogTime: 2, PublishTime: 2, Data: []byte{0xc1}})
	w.WriteMessage(mcap.Message{Channel: ch, Sequence: 3, LogTime: 3, PublishTime: 3, Data: []byte{1, 2}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	r = mcl_(context.Background(), "", "convert", src, "-o", out)
	if r.code != 1 || strings.Count(r.stderr, "warning:") != 2 || !strings.Contains(r.stderr, "skipped 2 messages") {
		t.Errorf("convert with bad payloads: %+v", r)
	}
	if got := inspReadMCAP(t, out); len(got) != 1 || string(got[0].Message.Data) != `{"a":1}` {
		t.Errorf("converted %d messages", len(got))
	}
	r = mcl_(context.Background(), "", "dump", src)
	if r.code != 1 || r.stdout != `{"log_time":"1970-01-01T00:00:00.000000001Z","topic":"t","sender":null,"group":null,"payload":{"a":1}}`+"\n" {
		t.Errorf("dump with bad payloads: %+v", r)
	}
	// An encoding convert cannot read stops it.
	fw, _ = os.Create(src)
	w, _ = mcap.NewWriter(fw, mcap.WriterOptions{})
	ch, _ = w.AddChannel(0, "t", "cdr", nil)
	w.WriteMessage(mcap.Message{Channel: ch, Data: []byte{1}})
	w.Close()
	fw.Close()
	os.Remove(out)
	r = mcl_(context.Background(), "", "convert", src, "-o", out)
	if _, err := os.Stat(out); r.code != 1 || !strings.Contains(r.stderr, `"cdr"`) || err == nil {
		t.Errorf("convert of cdr: %+v", r)
	}
}

// TestInspectEmptyRecording runs info, dump and convert on the files a
// recorder killed as it started can leave, 0 bytes or cut inside the MCAP
// header: each is an empty recording whose end is missing, handled like any
// other file of a killed recorder, and does not stop the commands from
// reading the files after it. A file of other bytes is not a recording.
func TestInspectEmptyRecording(t *testing.T) {
	dir := t.TempDir()
	good, msgs := inspSampleFile(t)
	head, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		data   []byte
		reason string
	}{
		{"empty", nil, "offset 0: file is empty"},
		{"in the magic", head[:5], "offset 0: file ends after 5 bytes, inside the MCAP magic"},
		{"in the Header", head[:12], "offset 8: file ends inside the Header record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".mcap")
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			r := mcl_(context.Background(), "", "info", path, good)
			t.Logf("\n%s", r.stdout)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("info: %+v", r)
			}
			first, second, _ := strings.Cut(r.stdout, "\n\n")
			f := inspInfoFields(t, first)
			if f["messages"] != "0" || f["topics"] != "0" || f["start"] != "-" ||
				f["summary"] != "missing: recovered by scanning: file was not closed" || !strings.Contains(f["warning"], tc.reason) {
				t.Errorf("info on the empty recording: %q", f)
			}
			if inspInfoFields(t, second)["messages"] != strconv.Itoa(len(msgs)) {
				t.Errorf("info on the file after it:\n%s", second)
			}

			// dump reports the damage and goes on with the next file.
			r = mcl_(context.Background(), "", "dump", path, good)
			if r.code != 1 || strings.Count(r.stdout, "\n") != len(msgs) || !strings.Contains(r.stderr, tc.reason) {
				t.Errorf("dump: code %d, %d lines, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
			}

			// convert makes an empty, complete file of it.
			out := filepath.Join(t.TempDir(), "out.mcap")
			r = mcl_(context.Background(), "", "convert", path, "-o", out)
			if r.code != 1 || !strings.Contains(r.stderr, tc.reason) || !strings.Contains(r.stdout, "0 messages") {
				t.Errorf("convert: %+v", r)
			}
			r = mcl_(context.Background(), "", "info", out)
			if f := inspInfoFields(t, r.stdout); r.code != 0 || f["messages"] != "0" || f["summary"] != "present" {
				t.Errorf("info on the converted file: %+v", r)
			}
		})
	}

	// Bytes that are not the start of an MCAP file are refused.
	garbage := filepath.Join(dir, "garbage.mcap")
	if err := os.WriteFile(garbage, []byte{0x89, 'M', 'C', 'A', 'X'}, 0o644); err != nil {
		t.Fatal(err)
	}
	r := mcl_(context.Background(), "", "info", garbage)
	if r.code != 1 || !strings.Contains(r.stderr, "garbage.mcap") || !strings.Contains(r.stderr, "magic") {
		t.Errorf("info on garbage: %+v", r)
	}
	r = mcl_(context.Background(), "", "dump", garbage)
	if r.code != 1 || !strings.Contains(r.stderr, "magic") {
		t.Errorf("dump of garbage: %+v", r)
	}
}

// TestCompletion: the shells complete recordings' arguments with .mcap
// files, and --topic with the topics of the files given.
func TestCompletion(t *testing.T) {
	path, _ := inspSampleFile(t)
	r := mcl_(context.Background(), "", "__complete", "dump", path, "--topic", "")
	if r.code != 0 || !strings.Contains(r.stdout, "gps\n") || !strings.Contains(r.stdout, "imu\n") || !strings.Contains(r.stdout, ":4\n") {
		t.Fatalf("complete dump --topic: %+v", r)
	}
	r = mcl_(context.Background(), "", "__complete", "replay", "")
	if r.code != 0 || !strings.Contains(r.stdout, "mcap\n") || !strings.Contains(r.stdout, ":8\n") {
		t.Fatalf("complete replay FILE: %+v", r)
	}
}
