package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
)

// recoverRecords reads path's records, failing on damage, and checks that
// its summary is present.
func recoverRecords(t *testing.T, path string) []recording.Record {
	t.Helper()
	f, err := recording.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info, err := f.Info(); err != nil || !info.FromSummary {
		t.Fatalf("%s: summary %v, %v", path, info.FromSummary, err)
	}
	var recs []recording.Record
	for r, err := range f.Records(recording.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

func sameRecord(a, b recording.Record) bool {
	return a.Topic == b.Topic && a.Group == b.Group && a.Sender == b.Sender && a.LogTime.Equal(b.LogTime) &&
		a.PublishTime.Equal(b.PublishTime) && a.Encoding == b.Encoding && bytes.Equal(a.Payload, b.Payload)
}

// TestRecoverCrashFile recovers recordings cut as a kill -9 leaves them:
// right after the first flush, inside the next record's header, and in the
// middle of the chunk after it.
func TestRecoverCrashFile(t *testing.T) {
	msgs := inspSampleMsgs(t)
	good, _ := inspSampleFile(t)
	all := recoverRecords(t, good)
	for _, cut := range []int64{0, 3, 60} {
		t.Run(fmt.Sprint("cut+", cut), func(t *testing.T) {
			crash, intact := inspCrashFile(t, msgs, 12, cut)
			before, _ := os.ReadFile(crash)
			r := mcl_(context.Background(), "", "recover", crash)
			out := strings.TrimSuffix(crash, ".mcap") + ".recovered.mcap"
			want := fmt.Sprintf("recovered 12 messages, all those before the damage at offset %d, into %s", intact, out)
			if r.code != 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "offset") {
				t.Fatalf("recover: %+v\nwant stderr with %q", r, want)
			}
			t.Logf("stderr:\n%s", r.stderr)
			if after, _ := os.ReadFile(crash); !bytes.Equal(before, after) {
				t.Fatal("recover modified its input")
			}
			got := recoverRecords(t, out)
			if len(got) != 12 {
				t.Fatalf("%d records, want 12", len(got))
			}
			for i := range got {
				if !sameRecord(got[i], all[i]) {
					t.Fatalf("record %d: %+v, want %+v", i, got[i], all[i])
				}
			}
			mcapcheck.Validate(t, out)

			// An existing output is refused, and replaced with --force.
			r = mcl_(context.Background(), "", "recover", crash)
			if r.code != 2 || !strings.Contains(r.stderr, "exists: use --force") {
				t.Fatalf("second recover: %+v", r)
			}
			r = mcl_(context.Background(), "", "recover", crash, "--force", "--compression", "lz4")
			if r.code != 0 {
				t.Fatalf("recover --force: %+v", r)
			}
			mcapcheck.Validate(t, out)
		})
	}
}

func TestRecoverComplete(t *testing.T) {
	good, msgs := inspSampleFile(t)
	out := filepath.Join(t.TempDir(), "copy.mcap")
	r := mcl_(context.Background(), "", "recover", good, "-o", out)
	if r.code != 0 || !strings.Contains(r.stderr, "nothing to recover") || !strings.Contains(r.stderr, fmt.Sprint(len(msgs), " messages")) {
		t.Fatalf("recover of a complete file: %+v", r)
	}
	t.Logf("stderr:\n%s", r.stderr)
	a, _ := os.ReadFile(good)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Fatal("a complete file is not copied as is")
	}
}

// TestRecoverHeaderOnly recovers a recorder killed before its first flush.
func TestRecoverHeaderOnly(t *testing.T) {
	msgs := inspSampleMsgs(t)
	crash, _ := inspCrashFile(t, msgs, 1, 0)
	path := filepath.Join(t.TempDir(), "header.mcap")
	b, _ := os.ReadFile(crash)
	// Only the magic and the Header (empty profile, library "mcl").
	hdr := int64(len(mcap.Magic)) + 9 + 4 + 4 + int64(len(mcap.Library))
	os.WriteFile(path, b[:hdr], 0o644)
	out := filepath.Join(t.TempDir(), "out.mcap")
	r := mcl_(context.Background(), "", "recover", path, "-o", out)
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("recovered 0 messages, all those before the damage at offset %d", hdr)) {
		t.Fatalf("recover: %+v", r)
	}
	if len(recoverRecords(t, out)) != 0 {
		t.Fatal("messages from nowhere")
	}
	mcapcheck.Validate(t, out)
}

func TestRecoverErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := inspSampleFile(t)
	text := filepath.Join(dir, "text.mcap")
	os.WriteFile(text, []byte("not a recording\n"), 0o644)
	exists := filepath.Join(dir, "exists.mcap")
	os.WriteFile(exists, []byte("keep"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"recover"}, 2, "one FILE"},
		{[]string{"recover", good, good}, 2, "one FILE"},
		{[]string{"recover", filepath.Join(dir, "none.mcap")}, 2, "no such file"},
		{[]string{"recover", dir}, 2, "is a directory"},
		{[]string{"recover", good, "--bogus"}, 2, "unknown flag"},
		{[]string{"recover", good, "--compression", "gzip"}, 2, "--compression"},
		{[]string{"recover", good, "-o", exists}, 2, "exists: use --force"},
		{[]string{"recover", good, "-o", good, "--force"}, 2, "is the input file"},
		{[]string{"recover", good, "-o", dir, "--force"}, 2, "is a directory"},
		{[]string{"recover", text, "-o", filepath.Join(dir, "x.mcap")}, 1, "MCAP magic"},
	} {
		r := mcl_(context.Background(), "", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("mcl %s: %+v; want exit %d and %q", strings.Join(c.args, " "), r, c.code, c.msg)
		}
	}
	if b, _ := os.ReadFile(exists); string(b) != "keep" {
		t.Error("an existing output was replaced without --force")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.mcap")); err == nil {
		t.Error("output written for a file that is not MCAP")
	}
}
