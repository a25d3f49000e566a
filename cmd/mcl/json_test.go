package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/sandbox"
)

// TestRecordJSON records live traffic with --encoding json: Foxglove-ready
// channels, each with a JSON schema that @mcap/core's check (ajv) and ours
// find every message valid against, a topic whose messages change shape
// getting a wider schema.
func TestRecordJSON(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "fox.mcap")
	type fix struct {
		Lat  any    `msgpack:"lat"`
		Lon  any    `msgpack:"lon"`
		Name string `msgpack:"name"`
	}
	sent := []struct {
		topic string
		v     any
	}{
		{"gps", fix{Lat: 1, Lon: 2, Name: "gps"}}, // integers first
		{"img", map[string]any{"png": []byte{0x89, 'P', 'N', 'G'}}},
		{"gps", fix{Lat: -33.9, Lon: 151.2, Name: "gps"}}, // then floats: a wider schema
		{"n", 7},
		{"gps", fix{Lat: 1.5, Lon: 2.5, Name: "gps"}},
		{"n", 8},
	}
	done := startCommand(t, "record", "--port", strconv.Itoa(port), "-o", file, "--encoding", "json",
		"--count", strconv.Itoa(len(sent)), "--duration", "30s")
	pub := publisherOn(t, mcl.DefaultGroup, port)
	for _, s := range sent {
		if err := pub.Publish(s.topic, s.v); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // in order, within each topic
	}
	r := wait(t, done)
	if r.code != 0 || !strings.Contains(r.stderr, "recorded 6 messages") {
		t.Fatalf("record: %+v", r)
	}

	v := mcapcheck.Validate(t, file)
	if v.Messages != len(sent) || v.JSONMessages != len(sent) || v.Schemas != 4 {
		t.Errorf("validator: %+v", v)
	}
	got := map[string][]string{} // topic → JSON messages
	schemas := map[string]map[string]bool{}
	for _, m := range inspReadMCAP(t, file) {
		if m.Channel.MessageEncoding != "json" || m.Schema == nil || m.Schema.Encoding != "jsonschema" {
			t.Fatalf("channel %+v, schema %+v", m.Channel, m.Schema)
		}
		if err := mcapcheck.FoxgloveSchema(m.Schema.Data); err != nil {
			t.Error(err)
		}
		if err := mcapcheck.ValidJSON(m.Schema.Data, m.Message.Data); err != nil {
			t.Error(err)
		}
		got[m.Channel.Topic] = append(got[m.Channel.Topic], string(m.Message.Data))
		if schemas[m.Channel.Topic] == nil {
			schemas[m.Channel.Topic] = map[string]bool{}
		}
		schemas[m.Channel.Topic][string(m.Schema.Data)] = true
	}
	want := map[string][]string{
		"gps": {`{"lat":1,"lon":2,"name":"gps"}`, `{"lat":-33.9,"lon":151.2,"name":"gps"}`, `{"lat":1.5,"lon":2.5,"name":"gps"}`},
		"img": {`{"png":"iVBORw=="}`},
		"n":   {`{"data":7}`, `{"data":8}`},
	}
	for topic, w := range want {
		if strings.Join(got[topic], " ") != strings.Join(w, " ") {
			t.Errorf("topic %s: %q, want %q", topic, got[topic], w)
		}
	}
	const gpsWide = `{"title":"gps","type":"object","properties":{"lat":{"type":"number"},"lon":{"type":"number"},"name":{"type":"string"}}}`
	const img = `{"title":"img","type":"object","properties":{"png":{"type":"string","contentEncoding":"base64"}}}`
	if len(schemas["gps"]) != 2 || !schemas["gps"][gpsWide] || !schemas["img"][img] {
		t.Errorf("schemas %v", schemas)
	}

	// info shows the encoding and the schemas.
	info := mcl_(context.Background(), "", "info", file)
	if row := inspInfoTable(t, info.stdout)["gps"]; len(row) != 9 || row[7] != "json" || row[8] != "gps" {
		t.Errorf("info: %q\n%s", row, info.stdout)
	}
}

// TestConvertJSONSchema: convert learns each topic's schema from all its
// messages before writing, so a topic has one schema, as wide as its
// messages need.
func TestConvertJSONSchema(t *testing.T) {
	msgs := []inspMsg{
		{topic: "a", sender: inspSenderA, members: [][2]string{{"x", "1"}}},
		{topic: "a", at: time.Millisecond, sender: inspSenderB, members: [][2]string{{"x", "1.5"}, {"s", `"t"`}}},
		{topic: "a", at: 2 * time.Millisecond, sender: inspSenderA, members: [][2]string{{"x", "null"}, {"n", "[1,2]"}}},
		{topic: "b", at: 3 * time.Millisecond, sender: inspSenderA, raw: inspPack(t, `[{"k":true}]`)},
	}
	in := filepath.Join(t.TempDir(), "in.mcap")
	inspRecord(t, in, msgs, 0, nil)
	out := filepath.Join(t.TempDir(), "out.json.mcap")
	if r := mcl_(context.Background(), "", "convert", in, "-o", out); r.code != 0 || !strings.Contains(r.stdout, "4 messages on 3 channels, encoding json, 2 schemas") {
		t.Fatalf("convert: %+v", r)
	}
	want := map[string]string{
		// x was an integer, a number, then null: left out.
		"a": `{"title":"a","type":"object","properties":{"s":{"type":"string"},"n":{"type":"array","items":{"type":"integer"}}}}`,
		"b": `{"title":"b","type":"object","properties":{"data":{"type":"array","items":{"type":"object","properties":{"k":{"type":"boolean"}}}}}}`,
	}
	for _, m := range inspReadMCAP(t, out) {
		if string(m.Schema.Data) != want[m.Channel.Topic] {
			t.Errorf("topic %s: schema %s, want %s", m.Channel.Topic, m.Schema.Data, want[m.Channel.Topic])
		}
		if err := mcapcheck.ValidJSON(m.Schema.Data, m.Message.Data); err != nil {
			t.Error(err)
		}
	}
	// Converting the JSON file again reads its JSON and gives the same.
	again := filepath.Join(t.TempDir(), "again.mcap")
	if r := mcl_(context.Background(), "", "convert", out, "-o", again); r.code != 0 {
		t.Fatalf("convert: %+v", r)
	}
	a, b := inspReadMCAP(t, out), inspReadMCAP(t, again)
	for i := range a {
		if string(a[i].Message.Data) != string(b[i].Message.Data) || string(a[i].Schema.Data) != string(b[i].Schema.Data) {
			t.Errorf("message %d: %s → %s", i, a[i].Message.Data, b[i].Message.Data)
		}
	}
	if v := mcapcheck.Validate(t, out); v.JSONMessages != len(msgs) || v.JSONChannels != 3 {
		t.Errorf("validator: %+v", v)
	}
}
