package recording

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/mcap"
)

// jsonGPS is a typed message type, registered for the JSON recording tests.
type jsonGPS struct {
	Lat   float64 `msgpack:"lat"`
	Lon   float64 `msgpack:"lon"`
	Frame string  `msgpack:"frame,omitempty"`
	Fix   []byte  `msgpack:"fix"`
}

func init() { mcl.MustRegister[jsonGPS]("recording_test.gps") }

func pack(t testing.TB, js string) []byte {
	t.Helper()
	b, err := msgjson.FromJSON(nil, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonMessage is a message read back from a JSON recording.
type jsonMessage struct {
	topic, schemaName string
	schema, data      []byte
	channel, schemaID uint16
}

// readJSON reads every message of a JSON recording and checks each against
// its channel's schema, as Foxglove would read them.
func readJSON(t *testing.T, path string) []jsonMessage {
	t.Helper()
	r := openMCAP(t, path)
	var out []jsonMessage
	for mv, err := range r.Messages(mcap.ReadOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if mv.Channel.MessageEncoding != "json" || mv.Schema == nil || mv.Schema.Encoding != "jsonschema" {
			t.Fatalf("channel %+v, schema %+v", mv.Channel, mv.Schema)
		}
		if err := mcapcheck.FoxgloveSchema(mv.Schema.Data); err != nil {
			t.Errorf("Foxglove would refuse schema %d: %v", mv.Schema.ID, err)
		}
		if err := mcapcheck.ValidJSON(mv.Schema.Data, mv.Message.Data); err != nil {
			t.Errorf("%s on channel %d: %v\nschema %s", mv.Message.Data, mv.Channel.ID, err, mv.Schema.Data)
		}
		out = append(out, jsonMessage{mv.Channel.Topic, mv.Schema.Name, mv.Schema.Data, mv.Message.Data, mv.Channel.ID, mv.Schema.ID})
	}
	return out
}

func TestJSONRecording(t *testing.T) {
	gps, err := TypeOf[jsonGPS]()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "j.mcap")
	rec, err := Create(path, Options{Encoding: "json", Types: []MessageType{gps}})
	if err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddrPort("[fd6d:636c::2]:40000")
	// A typed message as a Go publisher sends it, fix as msgpack bin.
	gpsMessage := msgp.AppendMapHeader(nil, 5)
	gpsMessage = msgp.AppendFloat64(msgp.AppendString(gpsMessage, "lat"), -33.9)
	gpsMessage = msgp.AppendFloat64(msgp.AppendString(gpsMessage, "lon"), 151.2)
	gpsMessage = msgp.AppendBytes(msgp.AppendString(gpsMessage, "fix"), []byte{0xff, 0})
	gpsMessage = msgp.AppendString(msgp.AppendString(gpsMessage, "name"), "recording_test.gps")
	gpsMessage = msgp.AppendFloat64(msgp.AppendString(gpsMessage, "timestamp"), 1764079200.5)
	inputs := []struct {
		topic   string
		payload []byte
		sender  netip.AddrPort
	}{
		{"gps", gpsMessage, sender},
		{"imu", pack(t, `{"ax":1}`), sender},
		{"imu", pack(t, `{"ax":1}`), other},
		{"imu", pack(t, `{"ax":1.5}`), sender},        // widens: ax is a number
		{"imu", pack(t, `{"ax":2}`), other},           // fits the widened schema
		{"imu", pack(t, `{"ax":3,"g":[1,2]}`), other}, // widens: g
		{"raw", pack(t, `7`), sender},
		{"raw", []byte{0xc4, 2, 0xff, 0}, sender}, // bytes where there was an integer: data is left out
		{"raw", []byte{0xc1, 0xc1}, sender},       // not msgpack at all
		{"gps", pack(t, `{"lat":1,"lon":2,"fix":null,"name":"recording_test.gps","timestamp":1764079201}`), sender},
	}
	for i, in := range inputs {
		if err := rec.Write(group, &mcl.Message{Topic: in.topic, Payload: in.payload, Sender: in.sender, Received: t0.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if st := rec.Stats(); st.Messages != uint64(len(inputs)) || st.Undescribed != 0 {
		t.Errorf("stats %+v", st)
	}

	got := readJSON(t, path)
	if len(got) != len(inputs) {
		t.Fatalf("read %d messages, wrote %d", len(got), len(inputs))
	}
	wantData := []string{
		`{"lat":-33.9,"lon":151.2,"fix":"/wA=","name":"recording_test.gps","timestamp":1764079200.5}`,
		`{"ax":1}`, `{"ax":1}`, `{"ax":1.5}`, `{"ax":2}`, `{"ax":3,"g":[1,2]}`,
		`{"data":7}`, `{"data":"/wA="}`, `{"$raw":"wcE="}`,
		`{"lat":1,"lon":2,"fix":null,"name":"recording_test.gps","timestamp":1764079201}`,
	}
	const gpsSchema = `{"title":"recording_test.gps","type":"object","properties":{"lat":{"type":"number"},"lon":{"type":"number"},` +
		`"frame":{"type":"string"},"fix":{"type":"string","contentEncoding":"base64"},"name":{"type":"string"},"timestamp":{"type":"number"}}}`
	imu := func(props string) string { return `{"title":"imu","type":"object","properties":{` + props + `}}` }
	raw := func(props string) string { return `{"title":"raw","type":"object","properties":{` + props + `}}` }
	wantSchema := []string{
		gpsSchema, // from the Go type, before any message: frame too
		imu(`"ax":{"type":"integer"}`), imu(`"ax":{"type":"integer"}`),
		imu(`"ax":{"type":"number"}`), imu(`"ax":{"type":"number"}`),
		imu(`"ax":{"type":"number"},"g":{"type":"array","items":{"type":"integer"}}`),
		raw(`"data":{"type":"integer"}`), raw(``), raw(`"$raw":{"type":"string","contentEncoding":"base64"}`),
		// The type said fix was bytes; a null fix leaves it out.
		strings.Replace(gpsSchema, `"fix":{"type":"string","contentEncoding":"base64"},`, "", 1),
	}
	channels := map[uint16]bool{}
	for i, m := range got {
		if m.topic != inputs[i].topic || string(m.data) != wantData[i] || string(m.schema) != wantSchema[i] {
			t.Errorf("message %d: %s %s\nschema %s\nwant   %s %s\nschema %s", i, m.topic, m.data, m.schema, inputs[i].topic, wantData[i], wantSchema[i])
		}
		channels[m.channel] = true
	}
	// A channel per sender and schema: imu's two senders under two of its
	// three schemas, and one for each other (topic, schema).
	if len(channels) != 2+5+3 {
		t.Errorf("%d channels", len(channels))
	}

	// The reference reader agrees, and checks each message against its
	// schema with a JSON Schema validator.
	out := mcapcheck.Validate(t, path)
	if out.Messages != len(inputs) || out.Schemas != 8 || out.JSONChannels != 10 || out.JSONMessages != len(inputs) {
		t.Errorf("validator: %+v", out)
	}

	// The recording reads back through the API, as JSON.
	for r, err := range Read(path, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Encoding != "json" || r.Group != group {
			t.Errorf("record %+v", r)
		}
	}
}

// TestJSONSchemaChanges: a topic whose messages keep changing shape gets a
// new schema for each change up to MaxSchemaChanges, then a catch-all for
// the rest of the file; the next file starts afresh from all it learnt.
func TestJSONSchemaChanges(t *testing.T) {
	dir := t.TempDir()
	const perFile = MaxSchemaChanges + 10
	rec, err := Create(dir, Options{Encoding: "json", SplitSize: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	for f := range 2 {
		if f == 1 { // as if the first file were full: split before the next message
			rec.mu.Lock()
			rec.size = 1 << 40
			rec.mu.Unlock()
		}
		for i := range perFile {
			n := f*perFile + i
			p := pack(t, fmt.Sprintf(`{"k%d":%d,"f":%d}`, n, i, f)) // a new member each time
			if err := rec.Write(group, msg("shape", p, t0.Add(time.Duration(n)*time.Millisecond))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	paths := rec.Files()
	if len(paths) != 2 {
		t.Fatalf("files %v", paths)
	}
	// Per file: the first schema, MaxSchemaChanges wider ones, and then the
	// catch-all for the messages after.
	wantUndescribed := 2 * (perFile - 1 - MaxSchemaChanges)
	if st := rec.Stats(); st.Undescribed != uint64(wantUndescribed) {
		t.Errorf("Undescribed %d, want %d", st.Undescribed, wantUndescribed)
	}
	for f, p := range paths {
		got := readJSON(t, p)
		if len(got) != perFile {
			t.Fatalf("%s: %d messages", p, len(got))
		}
		schemas := map[uint16]bool{}
		for i, m := range got {
			schemas[m.schemaID] = true
			switch {
			case i == 0 && f == 1:
				// The second file starts with all the first learnt.
				if !strings.Contains(string(m.schema), fmt.Sprintf(`"k%d"`, perFile-1)) {
					t.Errorf("file 2 starts with schema %s", m.schema)
				}
			case i > MaxSchemaChanges:
				if string(m.schema) != `{"title":"shape","type":"object","properties":{}}` {
					t.Errorf("file %d, message %d: schema %s, want the catch-all", f+1, i, m.schema)
				}
			}
		}
		if len(schemas) != MaxSchemaChanges+2 {
			t.Errorf("file %d: %d schemas", f+1, len(schemas))
		}
		out := mcapcheck.Validate(t, p)
		if out.JSONMessages != perFile {
			t.Errorf("validator: %+v", out)
		}
	}
}

func TestJSONOptions(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(filepath.Join(dir, "a.mcap"), Options{Encoding: "cbor"}); err == nil || !strings.Contains(err.Error(), `encoding "cbor"`) {
		t.Errorf("bad encoding: %v", err)
	}
	if _, err := Create(filepath.Join(dir, "b.mcap"), Options{Encoding: "json", Types: []MessageType{{}}}); err == nil {
		t.Error("a zero MessageType: no error")
	}
	type unregistered struct{ X int }
	if _, err := TypeOf[unregistered](); !errors.Is(err, mcl.ErrNotRegistered) {
		t.Errorf("TypeOf an unregistered type: %v", err)
	}
	if gps, err := TypeOf[jsonGPS](); err != nil || gps.Name() != "recording_test.gps" {
		t.Errorf("TypeOf: %v, %v", gps, err)
	}
	// msgpack stays the default, without schemas.
	path := filepath.Join(dir, "c.mcap")
	rec, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := pack(t, `{"a":1}`)
	rec.Write(group, msg("t", p, t0))
	rec.Close()
	for r, err := range Read(path, Filter{}) {
		if err != nil || r.Encoding != "msgpack" || string(r.Payload) != string(p) {
			t.Errorf("%+v, %v", r, err)
		}
	}
}
