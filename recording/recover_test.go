package recording

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/mcap"
)

// recoverSample records 40 messages on several channels (one with a topic
// that is not UTF-8) with a Flush every 8, and returns the complete file,
// its size when its Header was on disk, and the size after each Flush with
// the messages then flushed.
func recoverSample(t *testing.T) (file []byte, header int64, flushes []flushMark) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.mcap")
	rec, err := Create(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	header = size()
	group := netip.MustParseAddrPort("[ff15::c73d:cf41:ea8e:b0a0]:26000")
	senders := []netip.AddrPort{netip.MustParseAddrPort("[fd6d:636c::1]:40112"), netip.MustParseAddrPort("10.0.0.2:5000")}
	topics := []string{"gps", "imu/front", "bad\xff\xfe"}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 40 {
		m := &mcl.Message{
			Topic:    topics[i%len(topics)],
			Payload:  bytes.Repeat([]byte{0xa1, byte('a' + i%26)}, 1+i%7),
			Sender:   senders[i%2],
			Received: t0.Add(time.Duration(i) * time.Millisecond),
		}
		if err := rec.Write(group, m); err != nil {
			t.Fatal(err)
		}
		if (i+1)%8 == 0 {
			if err := rec.Flush(); err != nil {
				t.Fatal(err)
			}
			flushes = append(flushes, flushMark{size(), i + 1})
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	file, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return file, header, flushes
}

type flushMark struct {
	size int64
	msgs int
}

// recMessage is a message with everything of its channel that Recover
// must keep.
type recMessage struct {
	topic, encoding string
	meta            map[string]string
	schema          string
	msg             mcap.Message
}

func readMessages(t *testing.T, path string) ([]recMessage, error) {
	t.Helper()
	r := openMCAP(t, path)
	var out []recMessage
	for mv, err := range r.Messages(mcap.ReadOptions{}) {
		if err != nil {
			return out, err
		}
		m := recMessage{topic: mv.Channel.Topic, encoding: mv.Channel.MessageEncoding, meta: mv.Channel.Metadata, msg: mv.Message}
		if mv.Schema != nil {
			m.schema = mv.Schema.Name + "/" + mv.Schema.Encoding + "/" + string(mv.Schema.Data)
		}
		m.msg.Channel = 0 // IDs may be renumbered
		out = append(out, m)
	}
	return out, nil
}

func sameMessages(a, b recMessage) bool {
	return a.topic == b.topic && a.encoding == b.encoding && maps.Equal(a.meta, b.meta) && a.schema == b.schema &&
		a.msg.Sequence == b.msg.Sequence && a.msg.LogTime == b.msg.LogTime && a.msg.PublishTime == b.msg.PublishTime &&
		bytes.Equal(a.msg.Data, b.msg.Data)
}

func fromSummary(t *testing.T, path string) mcap.Info {
	t.Helper()
	r := openMCAP(t, path)
	info, err := r.Info()
	if err != nil || !info.FromSummary {
		t.Fatalf("%s: Info from summary %v, %v", path, info.FromSummary, err)
	}
	return info
}

func TestRecoverTruncated(t *testing.T) {
	file, header, flushes := recoverSample(t)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.mcap")
	if err := os.WriteFile(orig, file, 0o644); err != nil {
		t.Fatal(err)
	}
	all, err := readMessages(t, orig)
	if err != nil || len(all) != 40 {
		t.Fatalf("original: %d messages, %v", len(all), err)
	}
	if len(all[2].meta[MetaTopicBase64]) == 0 {
		t.Fatalf("sample lacks a topic_base64 channel: %v", all[2].meta)
	}
	tail := int64(len(file)) - (9 + 20 + 8) // Footer record and closing magic
	f2, f3 := flushes[1], flushes[2]
	cases := []struct {
		name   string
		cut    int64
		want   int  // messages recovered
		damage bool // the data section is cut
	}{
		{"empty", 0, 0, true},
		{"inside the magic", 5, 0, true},
		{"inside the header", header - 3, 0, true},
		{"right after the header", header, 0, true},
		{"inside a record header", f2.size + 4, f2.msgs, true},
		{"mid-chunk", (f2.size + f3.size) / 2, f2.msgs, true},
		{"inside a message index", f3.size - 2, f3.msgs, true},
		{"right after a flush", f3.size, f3.msgs, true},
		{"last flush", flushes[len(flushes)-1].size, 40, true},
		{"right before the footer", tail, 40, false},
		{"inside the footer", tail + 10, 40, false},
		{"before the closing magic", int64(len(file)) - 1, 40, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := filepath.Join(t.TempDir(), "cut.mcap")
			if err := os.WriteFile(in, file[:c.cut], 0o644); err != nil {
				t.Fatal(err)
			}
			out := RecoverPath(in)
			if want := filepath.Join(filepath.Dir(in), "cut.recovered.mcap"); out != want {
				t.Fatalf("RecoverPath = %s, want %s", out, want)
			}
			res, err := Recover(in, out, RecoverOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Complete || res.Messages != uint64(c.want) || (res.Damage != nil) != c.damage {
				t.Fatalf("cut at %d: %+v, want %d messages, damage %v", c.cut, res, c.want, c.damage)
			}
			if c.damage && (res.DamageOffset < 0 || res.DamageOffset > c.cut || !errors.Is(res.Damage, mcap.ErrTruncated)) {
				t.Fatalf("cut at %d: damage %v at %d", c.cut, res.Damage, res.DamageOffset)
			}
			if got, _ := os.ReadFile(in); !bytes.Equal(got, file[:c.cut]) {
				t.Fatal("the input was modified")
			}
			info := fromSummary(t, out)
			if info.MessageCount != uint64(c.want) {
				t.Fatalf("summary counts %d messages, want %d", info.MessageCount, c.want)
			}
			got, err := readMessages(t, out)
			if err != nil || len(got) != c.want {
				t.Fatalf("recovered file: %d messages, %v", len(got), err)
			}
			for i := range got {
				if !sameMessages(got[i], all[i]) {
					t.Fatalf("message %d: %+v, want %+v", i, got[i], all[i])
				}
			}
			// The recording reader gives back the exact topics too.
			i := 0
			for r, err := range Read(out, Filter{}) {
				if err != nil {
					t.Fatal(err)
				}
				if i == 2 && r.Topic != "bad\xff\xfe" {
					t.Fatalf("topic %q", r.Topic)
				}
				i++
			}
			mcapcheck.Validate(t, out)
		})
	}
}

func TestRecoverComplete(t *testing.T) {
	file, _, _ := recoverSample(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "rec.mcap")
	if err := os.WriteFile(in, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.mcap")
	res, err := Recover(in, out, RecoverOptions{})
	if err != nil || !res.Complete || res.Messages != 40 || res.Damage != nil || res.DamageOffset != -1 {
		t.Fatalf("%+v, %v", res, err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, file) {
		t.Fatal("a complete file is not copied as is")
	}
}

func TestRecoverOutput(t *testing.T) {
	file, _, flushes := recoverSample(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "rec.mcap")
	if err := os.WriteFile(in, file[:flushes[0].size+7], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.mcap")
	if err := os.WriteFile(out, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(in, out, RecoverOptions{}); !errors.Is(err, ErrOutputExists) {
		t.Fatalf("existing output: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Fatal("existing output replaced")
	}
	res, err := Recover(in, out, RecoverOptions{Force: true, Compression: "lz4"})
	if err != nil || res.Messages != uint64(flushes[0].msgs) {
		t.Fatalf("--force: %+v, %v", res, err)
	}
	fromSummary(t, out)
	if _, err := Recover(in, in, RecoverOptions{Force: true}); err == nil {
		t.Fatal("recovering a file onto itself")
	}
	if _, err := Recover(in, out, RecoverOptions{Force: true, Compression: "gzip"}); err == nil {
		t.Fatal("unknown compression accepted")
	}
	// Not MCAP, and missing: errors, no output.
	bad := filepath.Join(dir, "text.mcap")
	os.WriteFile(bad, []byte("hello, world\n"), 0o644)
	if _, err := Recover(bad, filepath.Join(dir, "x.mcap"), RecoverOptions{}); !errors.Is(err, mcap.ErrBadMagic) {
		t.Fatalf("not MCAP: %v", err)
	}
	if _, err := Recover(filepath.Join(dir, "none.mcap"), filepath.Join(dir, "y.mcap"), RecoverOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[out.mcap rec.mcap text.mcap]" {
		t.Fatalf("left behind: %v", names)
	}
}
