package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/recording"
)

// infoJSONOut is what a test reads of mcl info --json.
type infoJSONOut struct {
	Path        string         `json:"path"`
	Kind        string         `json:"kind"`
	Size        int64          `json:"size"`
	Library     string         `json:"library"`
	Messages    uint64         `json:"messages"`
	Start       *string        `json:"start"`
	StartNs     *int64         `json:"start_ns"`
	End         *string        `json:"end"`
	EndNs       *int64         `json:"end_ns"`
	DurationNs  int64          `json:"duration_ns"`
	Chunks      int            `json:"chunks"`
	Compression map[string]int `json:"compression"`
	FromSummary bool           `json:"from_summary"`
	Files       []struct {
		Path        string `json:"path"`
		Size        int64  `json:"size"`
		Messages    uint64 `json:"messages"`
		FromSummary bool   `json:"from_summary"`
		Summary     string `json:"summary"`
	} `json:"files"`
	Damage []struct {
		Path    string `json:"path"`
		Offset  int64  `json:"offset"`
		Message string `json:"message"`
	} `json:"damage"`
	Topics []infoTopicOut `json:"topics"`
}

type infoTopicOut struct {
	Topic       string   `json:"topic"`
	TopicBase64 string   `json:"topic_base64"`
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

func infoRunJSON(t *testing.T, args ...string) []infoJSONOut {
	t.Helper()
	r := mcl_(context.Background(), "", append([]string{"info", "--json"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("info --json %q: %+v", args, r)
	}
	var out []infoJSONOut
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		var v infoJSONOut
		dec := json.NewDecoder(strings.NewReader(line))
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

// infoCheckSampleTopics checks the topics of the sample recording, whole
// or split: exact counts, sizes, senders, groups and encodings.
func infoCheckSampleTopics(t *testing.T, topics []infoTopicOut, msgs []inspMsg) {
	t.Helper()
	type want struct {
		n, lo, hi int
		senders   []string
	}
	a, b := inspSenderA.String(), inspSenderB.String()
	wants := map[string]want{
		"gps":       {10, 32, 32, []string{a}},
		"imu":       {20, 18, 31, []string{a, b}},
		"raw":       {3, 5, 13, []string{b}},
		"bad\uFFFD": {1, 1, 1, []string{a}},
	}
	slices.Sort(wants["imu"].senders)
	span := (msgs[len(msgs)-1].at - msgs[0].at).Seconds()
	if len(topics) != len(wants) {
		t.Fatalf("topics %+v", topics)
	}
	for _, tp := range topics {
		w, ok := wants[tp.Topic]
		if !ok {
			t.Errorf("topic %q", tp.Topic)
			continue
		}
		if tp.Messages != uint64(w.n) || tp.SizeMin == nil || *tp.SizeMin != w.lo || *tp.SizeMax != w.hi ||
			!slices.Equal(tp.Senders, w.senders) || !slices.Equal(tp.Groups, []string{inspGroup.String()}) ||
			!slices.Equal(tp.Encodings, []string{"msgpack"}) || tp.Schemas == nil || len(tp.Schemas) != 0 {
			t.Errorf("topic %q: %+v", tp.Topic, tp)
		}
		if tp.RateHz == nil || *tp.RateHz != float64(w.n)/span {
			t.Errorf("topic %q: rate %v, want %v", tp.Topic, tp.RateHz, float64(w.n)/span)
		}
		var bytes int
		for _, m := range msgs {
			if strings.ToValidUTF8(m.topic, "\uFFFD") == tp.Topic {
				bytes += len(m.payload(t))
			}
		}
		if tp.SizeMean == nil || *tp.SizeMean != float64(bytes)/float64(w.n) {
			t.Errorf("topic %q: mean %v, want %v", tp.Topic, tp.SizeMean, float64(bytes)/float64(w.n))
		}
		wantB64 := ""
		if tp.Topic == "bad\uFFFD" {
			wantB64 = "YmFk/w==" // "bad\xff"
		}
		if tp.TopicBase64 != wantB64 {
			t.Errorf("topic %q: topic_base64 %q, want %q", tp.Topic, tp.TopicBase64, wantB64)
		}
	}
}

func TestInfoJSON(t *testing.T) {
	path, msgs := inspSampleFile(t)
	out := infoRunJSON(t, path)
	if len(out) != 1 {
		t.Fatalf("%d objects", len(out))
	}
	j := out[0]
	st, _ := os.Stat(path)
	first, last := inspT0.Add(msgs[0].at), inspT0.Add(msgs[len(msgs)-1].at)
	if j.Path != path || j.Kind != "file" || j.Size != st.Size() || j.Library != "mcl" || j.Messages != uint64(len(msgs)) ||
		j.Chunks != 1 || len(j.Compression) != 1 || j.Compression["zstd"] != 1 || !j.FromSummary || j.Damage == nil || len(j.Damage) != 0 {
		t.Errorf("info --json: %+v", j)
	}
	if j.Start == nil || *j.Start != first.Format(time.RFC3339Nano) || *j.StartNs != first.UnixNano() ||
		j.End == nil || *j.End != last.Format(time.RFC3339Nano) || *j.EndNs != last.UnixNano() ||
		j.DurationNs != int64(last.Sub(first)) {
		t.Errorf("times: %v %v %v %v %d", j.Start, j.StartNs, j.End, j.EndNs, j.DurationNs)
	}
	if len(j.Files) != 1 || j.Files[0].Path != path || j.Files[0].Messages != uint64(len(msgs)) || j.Files[0].Summary != "present" {
		t.Errorf("files: %+v", j.Files)
	}
	infoCheckSampleTopics(t, j.Topics, msgs)

	// One object a line per argument.
	if out := infoRunJSON(t, path, path); len(out) != 2 || out[1].Messages != uint64(len(msgs)) {
		t.Errorf("two files: %+v", out)
	}

	// A file that was not closed: its damage, and what was counted.
	crash, intact := inspCrashFile(t, msgs, 20, 0)
	j = infoRunJSON(t, crash)[0]
	if j.Messages != 20 || j.FromSummary || len(j.Damage) != 1 || j.Damage[0].Offset != intact || j.Damage[0].Path != crash ||
		!strings.Contains(j.Damage[0].Message, "without a Data End record") || j.Files[0].Summary != "not_closed" {
		t.Errorf("info --json on a crashed file: %+v", j)
	}
	var n uint64
	for _, tp := range j.Topics {
		n += tp.Messages
	}
	if n != 20 {
		t.Errorf("topics count %d messages", n)
	}

	// An empty recording: null times and sizes, no rate.
	empty := filepath.Join(t.TempDir(), "empty.mcap")
	os.WriteFile(empty, nil, 0o644)
	j = infoRunJSON(t, empty)[0]
	if j.Messages != 0 || j.Start != nil || j.StartNs != nil || j.End != nil || j.Topics == nil || len(j.Topics) != 0 || len(j.Damage) != 1 {
		t.Errorf("info --json on an empty file: %+v", j)
	}
}

// infoSplitRecording records the sample messages with mcl record's
// recorder, split by size into 3 files in a directory.
func infoSplitRecording(t *testing.T, msgs []inspMsg) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	rec, err := recording.Create(dir, recording.Options{SplitSize: 700, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		err := rec.Write(inspGroup, &mcl.Message{Topic: m.topic, Payload: m.payload(t), Sender: m.sender, Received: inspT0.Add(m.at)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	files := rec.Files()
	if len(files) != 3 {
		t.Fatalf("recorder wrote %d files: %v", len(files), files)
	}
	named := regexp.MustCompile(`^mcl-\d{8}T\d{6}Z-\d{4}\.mcap$`)
	for _, f := range files {
		if !named.MatchString(filepath.Base(f)) {
			t.Fatalf("file %s", f)
		}
	}
	// Not recordings: ignored.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("a run"), 0o644)
	os.Mkdir(filepath.Join(dir, "sub.mcap"), 0o755)
	return dir, files
}

func TestInfoDirectory(t *testing.T) {
	msgs := inspSampleMsgs(t)
	dir, files := infoSplitRecording(t, msgs)
	whole, _ := inspSampleFile(t)

	r := mcl_(context.Background(), "", "info", dir)
	t.Logf("\n%s", r.stdout)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("info DIR: %+v", r)
	}
	f := inspInfoFields(t, r.stdout)
	rw := mcl_(context.Background(), "", "info", whole)
	fw := inspInfoFields(t, rw.stdout)
	var size int64
	for _, name := range files {
		st, _ := os.Stat(name)
		size += st.Size()
	}
	want := map[string]string{
		"path": dir, "files": "3", "library": "mcl", "messages": strconv.Itoa(len(msgs)),
		"duration": fw["duration"], "start": fw["start"], "end": fw["end"],
		"chunks": "3 (zstd)", "summary": "present", "topics": "4",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s: %q, want %q", k, f[k], v)
		}
	}
	if !strings.HasPrefix(f["size"], strconv.FormatInt(size, 10)+" bytes") {
		t.Errorf("size %q, files hold %d bytes", f["size"], size)
	}
	// The files are listed, in order.
	for i, name := range files {
		if !strings.Contains(r.stdout, "\n"+filepath.Base(name)+" ") {
			t.Errorf("file %s not listed", name)
		}
		if i > 0 && strings.Index(r.stdout, filepath.Base(name)) < strings.Index(r.stdout, filepath.Base(files[i-1])) {
			t.Errorf("file %s listed before %s", name, files[i-1])
		}
	}
	// The topic table is that of the recording in one file: counts summed,
	// rates over the whole span, sizes merged, senders and groups unioned.
	if got, w := inspInfoTable(t, r.stdout), inspInfoTable(t, rw.stdout); len(got) != 4 || !mapsEqual(got, w) {
		t.Errorf("table %q, want %q", got, w)
	}

	// --json: one object with the files.
	j := infoRunJSON(t, dir)[0]
	if j.Kind != "directory" || j.Path != dir || j.Size != size || j.Messages != uint64(len(msgs)) || len(j.Files) != 3 ||
		j.Chunks != 3 || j.Compression["zstd"] != 3 || !j.FromSummary {
		t.Errorf("info --json DIR: %+v", j)
	}
	var n uint64
	for i, fj := range j.Files {
		n += fj.Messages
		if fj.Path != files[i] || fj.Messages == 0 || fj.Summary != "present" {
			t.Errorf("file %d: %+v", i, fj)
		}
	}
	if n != uint64(len(msgs)) {
		t.Errorf("files hold %d messages", n)
	}
	infoCheckSampleTopics(t, j.Topics, msgs)

	// Files and directories mixed: one block each.
	r = mcl_(context.Background(), "", "info", whole, dir)
	if r.code != 0 || strings.Count(r.stdout, "summary:") != 2 || !strings.Contains(r.stdout, "files:     3") {
		t.Errorf("info FILE DIR: %+v", r)
	}

	// A directory without .mcap files is an error, after the others.
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("a run"), 0o644)
	r = mcl_(context.Background(), "", "info", empty, whole)
	if r.code != 1 || !strings.Contains(r.stderr, empty) || !strings.Contains(r.stderr, "no .mcap files") ||
		inspInfoFields(t, r.stdout)["messages"] != strconv.Itoa(len(msgs)) {
		t.Errorf("info on a directory without recordings: %+v", r)
	}

	// A file of the directory that was not closed gets a warning, and the
	// directory's summary says so.
	last := files[len(files)-1]
	data, _ := os.ReadFile(last)
	os.WriteFile(last, data[:60], 0o644) // inside its only chunk
	r = mcl_(context.Background(), "", "info", dir)
	f = inspInfoFields(t, r.stdout)
	if r.code != 0 || !strings.HasPrefix(f["summary"], "present in 2 of 3 files") || f["messages"] != "27" ||
		!strings.HasPrefix(f["warning"], filepath.Base(last)+": damaged at offset") || !strings.Contains(r.stdout, " not_closed\n") {
		t.Errorf("info on a directory with a cut file: %+v", r)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestInfoEncoding(t *testing.T) {
	path, msgs := inspSampleFile(t)
	conv := filepath.Join(t.TempDir(), "rec.json.mcap")
	if r := mcl_(context.Background(), "", "convert", path, "--encoding", "json", "-o", conv); r.code != 0 {
		t.Fatalf("convert: %+v", r)
	}
	for file, enc := range map[string]string{path: "msgpack", conv: "json"} {
		r := mcl_(context.Background(), "", "info", file)
		if r.code != 0 {
			t.Fatalf("info: %+v", r)
		}
		// The converted file's channels have schemas, named after their topics.
		header := map[string]string{"msgpack": "  ENCODING\n", "json": "  ENCODING  SCHEMA\n"}[enc]
		if !strings.Contains(r.stdout, header) {
			t.Errorf("no ENCODING column:\n%s", r.stdout)
		}
		for topic, row := range inspInfoTable(t, r.stdout) {
			schema := map[string]string{"gps": "gps", "imu": "imu", "raw": "raw", `"bad\xff"`: "bad\uFFFD"}[topic]
			if row[7] != enc || (enc == "json" && row[8] != schema) {
				t.Errorf("%s: topic %s: encoding and schema %q, want %q", file, topic, row[7:], enc)
			}
		}
		j := infoRunJSON(t, file)[0]
		if j.Messages != uint64(len(msgs)) || len(j.Topics) != 4 {
			t.Errorf("%s: %+v", file, j)
		}
		for _, tp := range j.Topics {
			if !slices.Equal(tp.Encodings, []string{enc}) {
				t.Errorf("%s: topic %q: encodings %q", file, tp.Topic, tp.Encodings)
			}
		}
	}
	// Both in one directory: each topic has both encodings.
	dir := t.TempDir()
	for _, f := range []string{path, conv} {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
	}
	for _, tp := range infoRunJSON(t, dir)[0].Topics {
		if !slices.Equal(tp.Encodings, []string{"json", "msgpack"}) || tp.Messages != 2*map[string]uint64{"gps": 10, "imu": 20, "raw": 3, "bad\uFFFD": 1}[tp.Topic] {
			t.Errorf("topic %q: %+v", tp.Topic, tp)
		}
	}
}
