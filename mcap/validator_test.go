package mcap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mcl-go/mcl/internal/mcapcheck"
)

// validatorOutput is what validate.mjs prints.
type validatorOutput = mcapcheck.Output

func requireValidator(t *testing.T) string { return mcapcheck.Require(t) }

func runValidator(t *testing.T, _, path string) (validatorOutput, error) {
	return mcapcheck.Run(t, path)
}

// orderedDigest hashes messages as validate.mjs does.
func orderedDigest(wr *written, msgs []Message) string {
	h := sha256.New()
	for _, m := range msgs {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", wr.channels[m.Channel].Topic, m.LogTime, m.PublishTime, m.Sequence)
		h.Write(m.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestValidator(t *testing.T) {
	node := requireValidator(t)
	dir := t.TempDir()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 3000)
			path := filepath.Join(dir, m.name+".mcap")
			if err := os.WriteFile(path, wr.file, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runValidator(t, node, path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("validator: %+v", out)
			if out.Library != "mcl" || out.Profile != "" {
				t.Errorf("header: %q %q", out.Library, out.Profile)
			}
			if out.Messages != len(wr.msgs) {
				t.Errorf("validator saw %d messages, wrote %d", out.Messages, len(wr.msgs))
			}
			want := wr.topicCounts()
			for topic, n := range want {
				if n == 0 {
					delete(want, topic) // the validator lists topics with messages
				}
			}
			if len(out.Channels) != len(want) {
				t.Errorf("validator topics %v, want %v", out.Channels, want)
			}
			for topic, n := range want {
				if out.Channels[topic] != n {
					t.Errorf("topic %s: validator %d, want %d", topic, out.Channels[topic], n)
				}
			}
			if out.ChannelCount != len(wr.channels) || out.Schemas != len(wr.schemas) || out.Metadata != len(wr.metadata) {
				t.Errorf("validator: %d channels, %d schemas, %d metadata; want %d, %d, %d",
					out.ChannelCount, out.Schemas, out.Metadata, len(wr.channels), len(wr.schemas), len(wr.metadata))
			}
			if out.OrderedSHA256 != orderedDigest(wr, wr.msgs) {
				t.Error("message contents differ from what was written")
			}
			if fmt.Sprint(wr.msgs[0].LogTime) != out.MessageStartTime || fmt.Sprint(wr.msgs[len(wr.msgs)-1].LogTime) != out.MessageEndTime {
				t.Errorf("time range %s..%s", out.MessageStartTime, out.MessageEndTime)
			}
			if m.opts.Chunked {
				if out.Chunks < 10 || out.IndexedMessages == nil || *out.IndexedMessages != len(wr.msgs) {
					t.Errorf("chunks %d, indexed messages %v", out.Chunks, out.IndexedMessages)
				}
				if !slices.Equal(out.Compression, []string{m.opts.Compression}) {
					t.Errorf("compression %v, want %q", out.Compression, m.opts.Compression)
				}
			} else if out.Chunks != 0 {
				t.Errorf("unchunked file has %d chunks", out.Chunks)
			}
		})
	}

	// A recovered crash file is valid too.
	t.Run("recovered", func(t *testing.T) {
		wr := writeSample(t, modes[3].opts, 1000)
		cut := wr.file[:len(wr.file)*2/3]
		var out bytes.Buffer
		res, err := Recover(&out, bytes.NewReader(cut), int64(len(cut)), modes[2].opts)
		if err != nil || res.Damage == nil || res.Messages == 0 {
			t.Fatalf("Recover = %+v, %v", res, err)
		}
		path := filepath.Join(dir, "recovered.mcap")
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := runValidator(t, node, path)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(v.Messages) != res.Messages || v.OrderedSHA256 != orderedDigest(wr, wr.msgs[:res.Messages]) {
			t.Errorf("validator saw %d messages (digest %s), recovered %d", v.Messages, v.OrderedSHA256, res.Messages)
		}
	})

	// And the validator is not a rubber stamp: a flipped byte fails it.
	t.Run("rejects corruption", func(t *testing.T) {
		wr := writeSample(t, modes[1].opts, 200)
		bad := slices.Clone(wr.file)
		bad[len(bad)/3] ^= 0x40
		path := filepath.Join(dir, "bad.mcap")
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runValidator(t, node, path)
		if err == nil {
			t.Fatalf("validator accepted a corrupt file: %+v", out)
		}
		t.Logf("validator rejected it: %v", err)
	})
}
