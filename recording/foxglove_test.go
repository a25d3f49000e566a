package recording

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	fmcap "github.com/foxglove/mcap/go/mcap"

	"github.com/mcl-go/mcl/internal/mcapcheck"
)

// TestJSONFoxgloveReader reads a JSON recording with foxglove's own Go
// reader, through the index and as a stream: every message is on a "json"
// channel with a "jsonschema" schema that Foxglove reads, and valid against
// it.
func TestJSONFoxgloveReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fox.mcap")
	rec, err := Create(path, Options{Encoding: "json"})
	if err != nil {
		t.Fatal(err)
	}
	payloads := []string{
		`{"x":1,"s":"a"}`, `{"x":1.5,"s":"b","o":{"v":[1,2]}}`, `[1,2,3]`, `"text"`, `{"x":null}`, `{"t":{"u":true}}`,
	}
	const n = 300
	for i := range n {
		topic := []string{"a", "b", "c"}[i%3]
		p := pack(t, payloads[i%len(payloads)])
		if err := rec.Write(group, msg(topic, p, t0.Add(time.Duration(i)*time.Millisecond))); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}

	for _, indexed := range []bool{true, false} {
		t.Run(fmt.Sprint("index=", indexed), func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := fmcap.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if indexed { // (Info leaves the file at its summary, where a stream read would start)
				info, err := r.Info()
				if err != nil {
					t.Fatal(err)
				}
				if info.Statistics.MessageCount != n || len(info.Schemas) != int(info.Statistics.SchemaCount) || len(info.Schemas) < 3 {
					t.Errorf("statistics %+v, %d schemas", info.Statistics, len(info.Schemas))
				}
			}
			it, err := r.Messages(fmcap.UsingIndex(indexed))
			if err != nil {
				t.Fatal(err)
			}
			count := 0
			var m fmcap.Message
			for {
				schema, ch, msg, err := it.NextInto(&m)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if ch.MessageEncoding != "json" || schema == nil || schema.Encoding != "jsonschema" || schema.Name != ch.Topic {
					t.Fatalf("channel %+v, schema %+v", ch, schema)
				}
				if err := mcapcheck.FoxgloveSchema(schema.Data); err != nil {
					t.Errorf("schema %d: %v", schema.ID, err)
				}
				if err := mcapcheck.ValidJSON(schema.Data, msg.Data); err != nil {
					t.Errorf("%s: %v", msg.Data, err)
				}
				count++
			}
			if count != n {
				t.Errorf("read %d messages, wrote %d", count, n)
			}
		})
	}
}
