package recording

import (
	"bytes"
	"errors"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/mcap"
)

var (
	group  = netip.MustParseAddrPort("[ff15::c73d:cf41:ea8e:b0a0]:26000")
	sender = netip.MustParseAddrPort("[fd6d:636c::1]:40000")
	t0     = time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
)

// mclMessage is an MCL Message map {name, timestamp, i} as Python packs it.
func mclMessage(i int, ts float64) []byte {
	b := []byte{0x83, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'g', 'p', 's', 0xa9}
	b = append(b, "timestamp"...)
	b = append(b, 0xcb)
	b = append(b, f64(ts)...)
	return append(b, 0xa1, 'i', byte(i&0x7f))
}

func f64(f float64) []byte {
	var b [8]byte
	u := math.Float64bits(f)
	for i := range 8 {
		b[i] = byte(u >> (56 - 8*i))
	}
	return b[:]
}

// openMCAP opens path with the mcap package's reader, for tests that look
// at what Record does not carry (schemas, channel metadata, summaries);
// the file closes with the test.
func openMCAP(t *testing.T, path string) *mcap.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := mcap.NewReader(f, st.Size())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

func msg(topic string, payload []byte, at time.Time) *mcl.Message {
	return &mcl.Message{Topic: topic, Payload: payload, Sender: sender, Received: at}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.mcap")
	rec, err := Create(path, Options{Compression: "lz4"})
	if err != nil {
		t.Fatal(err)
	}
	odd := "bad\xff\xfetopic"
	var want []Record
	for i := range 100 {
		topic := []string{"gps", "imu", odd}[i%3]
		p := mclMessage(i, float64(t0.Unix())+float64(i)/10)
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond).Add(time.Second)
		if err := rec.Write(group, msg(topic, p, at)); err != nil {
			t.Fatal(err)
		}
		want = append(want, Record{Topic: topic, Payload: p, LogTime: at,
			PublishTime: t0.Add(time.Duration(i) * 100 * time.Millisecond)})
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	var got []Record
	for r, err := range Read(path, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Topic != w.Topic || !bytes.Equal(r.Payload, w.Payload) || !r.LogTime.Equal(w.LogTime) ||
			r.Group != group || r.Sender != sender || r.Encoding != "msgpack" {
			t.Fatalf("record %d = %+v, want %+v", i, r, w)
		}
		if d := r.PublishTime.Sub(w.PublishTime); d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("record %d publish time %s, want %s", i, r.PublishTime, w.PublishTime)
		}
	}
	mcapcheck.Validate(t, path)
	n := 0
	for r, err := range Read(path, Filter{Topics: []string{odd}, Start: t0.Add(time.Second + 300*time.Millisecond)}) {
		if err != nil || r.Topic != odd || r.LogTime.Before(t0.Add(time.Second+300*time.Millisecond)) {
			t.Fatalf("filtered read: %+v %v", r, err)
		}
		n++
	}
	if n != 23 {
		t.Errorf("filtered read gave %d records, want 23", n)
	}
}

func TestSplitNames(t *testing.T) {
	dir := t.TempDir()
	rec, err := Create(dir, Options{SplitSize: 64 << 10, Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	p := bytes.Repeat([]byte{0xc4, 0xff}, 1)
	p = append(p, make([]byte, 255)...)
	for i := range 1000 {
		if err := rec.Write(group, msg("t", p, t0.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	files := rec.Files()
	if len(files) < 3 {
		t.Fatalf("%d files, want a split every 64 KiB", len(files))
	}
	if !sort.StringsAreSorted(files) {
		t.Errorf("file names do not sort in order: %v", files)
	}
	total := 0
	for _, f := range files {
		mcapcheck.Validate(t, f)
		for _, err := range Read(f, Filter{}) {
			if err != nil {
				t.Fatal(err)
			}
			total++
		}
	}
	if total != 1000 {
		t.Errorf("read %d records across files, want 1000", total)
	}
	if _, err := Create(filepath.Join(dir, "one.mcap"), Options{SplitSize: 1}); !errors.Is(err, ErrSplitNeedsDir) {
		t.Errorf("split into a file: %v", err)
	}
}

// TestFlushedBeforeCrash cuts the file where a crash could leave it and
// reads back everything flushed before.
func TestFlushedBeforeCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.mcap")
	rec, err := Create(path, Options{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		rec.Write(group, msg("t", []byte{byte(i)}, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.mcap")
	// What a kill -9 right after the flush leaves, plus a torn record.
	os.WriteFile(cut, append(data, 0x05, 0x20, 0, 0), 0o644)
	var got []byte
	var damage error
	for r, err := range Read(cut, Filter{}) {
		if err != nil {
			damage = err
			break
		}
		got = append(got, r.Payload...)
	}
	if len(got) != 50 || got[49] != 49 {
		t.Errorf("recovered %d messages, want all 50 flushed", len(got))
	}
	if damage == nil || !bytes.Contains([]byte(damage.Error()), []byte("cut.mcap")) {
		t.Errorf("damage error %v does not name the file", damage)
	}
	rec.Close()
}

// TestFullDisk records onto a tiny file system until it is full: the error
// is clear, the files finished before it stay readable, and Stats counts
// as recorded exactly the messages the files give back, the rest as lost.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	for _, tc := range []struct {
		name       string
		opts       Options
		flushEvery int // messages; 0: never, so the first 1 MiB chunk cannot fit
	}{
		{"split and flushed", Options{SplitSize: 100 << 10, Compression: "none"}, 50},
		{"one unflushed chunk", Options{Compression: "none"}, 0},
		{"zstd, flushed", Options{Compression: "zstd"}, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "mcltest", dir).CombinedOutput(); err != nil {
				t.Skipf("cannot mount a tmpfs: %v %s", err, out)
			}
			defer syscall.Unmount(dir, 0)
			rec, err := Create(dir, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			given := 0
			for i := 0; werr == nil && i < 10000; i++ {
				werr = rec.Write(group, msg("t", incompressible(i), t0.Add(time.Duration(i)*time.Millisecond)))
				given++
				if werr == nil && tc.flushEvery > 0 && i%tc.flushEvery == 0 {
					werr = rec.Flush()
				}
			}
			// Writes after the failure are refused, and lost too.
			if err := rec.Write(group, msg("t", incompressible(0), t0)); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("Write after the failure: %v", err)
			}
			given++
			cerr := rec.Close()
			if werr == nil {
				werr = cerr
			}
			if !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("error %v, want no space left on device", werr)
			}
			files := rec.Files()
			for _, f := range files[:len(files)-1] {
				rf, err := Open(f)
				if err != nil {
					t.Fatal(err)
				}
				info, err := rf.Info()
				rf.Close()
				if err != nil || !info.FromSummary || info.MessageCount == 0 {
					t.Errorf("finished file %s: %+v %v", f, info.MessageCount, err)
				}
			}
			var readable, bytes uint64
			for _, f := range files {
				for r, err := range Read(f, Filter{}) {
					if err != nil {
						break // the damage where the disk filled
					}
					readable++
					bytes += uint64(len(r.Payload))
				}
			}
			st := rec.Stats()
			t.Logf("%d files; stats %+v; %d messages readable", len(files), st, readable)
			if st.Messages != readable || st.Bytes != bytes {
				t.Errorf("Stats says %d messages, %d bytes recorded; the files hold %d, %d bytes", st.Messages, st.Bytes, readable, bytes)
			}
			if st.Received != uint64(given) || st.Lost != st.Received-st.Messages || st.Lost == 0 {
				t.Errorf("Stats %+v after %d calls of Write", st, given)
			}
		})
	}
}

// incompressible returns a 1000-byte msgpack bin payload that zstd cannot
// shrink much.
func incompressible(seed int) []byte {
	p := make([]byte, 1000)
	p[0], p[1], p[2] = 0xc5, 0x03, 0xe5
	x := uint32(seed)*2654435761 + 1
	for i := 3; i < len(p); i++ {
		x = x*1664525 + 1013904223
		p[i] = byte(x >> 24)
	}
	return p
}

// TestKilledAtOnce reads the files of a recorder that stopped (as with kill
// -9) before its first flush, at the start and just after a split: each
// holds the MCAP header already and reads as an empty recording whose end
// is missing, like any other file of a killed recorder.
func TestKilledAtOnce(t *testing.T) {
	dir := t.TempDir()
	rec, err := Create(dir, Options{FlushInterval: time.Hour, SplitSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	checkEmpty := func(name string) {
		t.Helper()
		f, err := Open(name)
		if err != nil {
			t.Fatalf("a recording abandoned at once does not open: %v", err)
		}
		info, err := f.Info()
		f.Close()
		if !errors.Is(err, mcap.ErrTruncated) || info.MessageCount != 0 || info.Library != mcap.Library {
			t.Errorf("%s: Info %+v, %v; want no messages, library %q and the missing end", name, info, err, mcap.Library)
		}
		n := 0
		for _, err := range Read(name, Filter{}) {
			n++
			if !errors.Is(err, mcap.ErrTruncated) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s: Read yields %v; want only the missing end, naming the file", name, err)
			}
		}
		if n != 1 {
			t.Errorf("%s: Read yields %d values, want 1 error", name, n)
		}
	}
	checkEmpty(rec.Files()[0])

	// A message over SplitSize, then one more that starts the second file.
	for i := range 2 {
		if err := rec.Write(group, msg("t", incompressible(i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	if files := rec.Files(); len(files) != 2 {
		t.Fatalf("files %v, want a split", files)
	} else {
		checkEmpty(files[1])
	}
}

// TestReadEmptyFile reads a 0-byte file, which a recorder killed between
// creating its file and writing the header leaves, as an empty recording
// with its end missing; a file of other bytes is not a recording at all.
func TestReadEmptyFile(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.mcap")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(empty)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	info, err := f.Info()
	f.Close()
	if !errors.Is(err, mcap.ErrTruncated) || info.MessageCount != 0 {
		t.Errorf("Info: %+v, %v", info, err)
	}
	var errs []error
	for r, err := range Read(empty, Filter{}) {
		if err == nil {
			t.Fatalf("a record from an empty file: %+v", r)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], mcap.ErrTruncated) || !strings.Contains(errs[0].Error(), "empty.mcap") {
		t.Errorf("Read: %v; want one error naming the file and its missing end", errs)
	}

	garbage := filepath.Join(dir, "garbage.mcap")
	if err := os.WriteFile(garbage, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage); !errors.Is(err, mcap.ErrBadMagic) || !strings.Contains(err.Error(), "garbage.mcap") {
		t.Errorf("Open of a shell script: %v", err)
	}
}

func TestPublishTime(t *testing.T) {
	for _, tc := range []struct {
		payload []byte
		want    uint64
	}{
		{mclMessage(1, 1.5e9), 1.5e18},
		{[]byte{0x01}, 7},                         // not a map
		{[]byte{0x81, 0xa1, 'x', 0x01}, 7},        // no timestamp
		{[]byte{0x81, 0xa9}, 7},                   // truncated
		{[]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, 7}, // hostile header
	} {
		if got := publishTime(tc.payload, 7); got != tc.want {
			t.Errorf("publishTime(% x) = %d, want %d", tc.payload, got, tc.want)
		}
	}
}

// BenchmarkReplayTiming replays 10 s of a 1 kHz recording in real time and
// reports how far from its schedule each message went out.
func BenchmarkReplayTiming(b *testing.B) {
	path := filepath.Join(b.TempDir(), "1khz.mcap")
	rec, err := Create(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10_000 {
		rec.Write(group, msg("t", []byte{0x01}, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	rec.Close()
	for b.Loop() {
		var dev []time.Duration
		_, err := Replay(b.Context(), []string{path}, ReplayOptions{Speed: 1, OnSend: func(due, sent time.Time) {
			dev = append(dev, sent.Sub(due))
		}}, func(Record) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		slices.Sort(dev)
		b.ReportMetric(float64(dev[len(dev)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(dev[len(dev)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(dev[len(dev)-1].Microseconds()), "max-µs")
	}
}

// TestReplayNoDrift stalls the publisher on one message: the message after
// it goes out late, at once, and the one after that on its own schedule, so
// the stall does not shift the rest of the replay.
func TestReplayNoDrift(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drift.mcap")
	rec, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		rec.Write(group, msg("t", []byte{byte(i)}, t0.Add(time.Duration(i)*100*time.Millisecond)))
	}
	rec.Close()
	var dues, sents []time.Time
	st, err := Replay(t.Context(), []string{path}, ReplayOptions{Speed: 1, OnSend: func(due, sent time.Time) {
		dues, sents = append(dues, due), append(sents, sent)
	}}, func(r Record) error {
		if r.Payload[0] == 1 {
			time.Sleep(250 * time.Millisecond) // a stalled publisher
		}
		return nil
	})
	if err != nil || st.Messages != 4 {
		t.Fatalf("replayed %d: %v", st.Messages, err)
	}
	start := dues[0]
	for i, due := range dues {
		if want := start.Add(time.Duration(i) * 100 * time.Millisecond); !due.Equal(want) {
			t.Errorf("message %d due at +%s, want +%s: the schedule moved", i, due.Sub(start), want.Sub(start))
		}
	}
	if late := sents[2].Sub(dues[2]); late < 100*time.Millisecond {
		t.Errorf("message 2 was %s late; the stall should have delayed it", late)
	}
	if st.Late < 1 || st.MaxLate < 100*time.Millisecond {
		t.Errorf("stats %+v: the late message is not counted", st)
	}
}
