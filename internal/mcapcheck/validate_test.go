package mcapcheck_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/mcap"
)

// writeJSON writes an MCAP file with one JSON channel whose schema is
// schema, holding msgs.
func writeJSON(t *testing.T, schema string, msgs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "j.mcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := mcap.NewWriter(f, mcap.WriterOptions{Chunked: true, Compression: mcap.CompressionZstd})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := w.AddSchema("s", "jsonschema", []byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	cid, err := w.AddChannel(sid, "t", "json", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if err := w.WriteMessage(mcap.Message{Channel: cid, Sequence: uint32(i + 1), LogTime: uint64(i), PublishTime: uint64(i), Data: []byte(m)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidatorJSON: validate.mjs holds JSON channels to their schemas and
// to what Foxglove reads.
func TestValidatorJSON(t *testing.T) {
	mcapcheck.Require(t)
	const schema = `{"title":"s","type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string","contentEncoding":"base64"},` +
		`"o":{"type":"object","properties":{"c":{"type":"array","items":{"type":"number"}}}}}}`
	out, err := mcapcheck.Run(t, writeJSON(t, schema, `{"a":1,"b":"AP8=","o":{"c":[1.5,2]}}`, `{"x":null}`, `{}`))
	if err != nil || out.JSONChannels != 1 || out.JSONMessages != 3 {
		t.Errorf("a valid file: %+v, %v", out, err)
	}
	for _, tc := range []struct{ schema, msg, want string }{
		{schema, `{"a":1.5}`, "invalid against schema 1"},
		{schema, `{"o":{"c":["x"]}}`, "invalid against schema 1"},
		{schema, `[1]`, "not a JSON object"},
		{schema, `{"a":`, "not JSON"},
		{schema, `{"b":"AP8"}`, "is not base64"},
		{`{"type":"object","properties":{"n":{"type":"null"}}}`, `{"n":null}`, "which Foxglove does not read"},
		{`{"type":"object","properties":{"n":{"type":["number","null"]}}}`, `{"n":null}`, "which Foxglove does not read"},
		{`{"type":"object","properties":{"n":{"type":"array","items":{"type":"array","items":{"type":"number"}}}}}`, `{}`, "an array of arrays"},
		{`{"type":"object"}`, `{}`, "no properties"},
		{`{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`, `{}`, "invalid against schema 1"},
	} {
		_, err := mcapcheck.Run(t, writeJSON(t, tc.schema, tc.msg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("schema %s, message %s: %v; want %q", tc.schema, tc.msg, err, tc.want)
		}
	}
}
