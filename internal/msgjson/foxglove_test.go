package msgjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/internal/msgjson"
)

func TestToFoxgloveJSON(t *testing.T) {
	for _, tc := range []struct{ msgpack, want string }{
		{"81 a1 61 01", `{"a":1}`},
		{"80", `{}`},
		{"01", `{"data":1}`},
		{"c0", `{"data":null}`},
		{"93 01 a1 78 c0", `{"data":[1,"x",null]}`},
		{"a3 ff fe 41", `{"data":"//5B"}`},                                                // a str that is not UTF-8: bytes
		{"c4 02 00 ff", `{"data":"AP8="}`},                                                // a bin
		{"81 a1 62 c4 00", `{"b":""}`},                                                    // an empty bin
		{"cb 7f f8 00 00 00 00 00 00", `{"data":"NaN"}`},                                  // as ToJSON
		{"ca 3f c0 00 00", `{"data":1.5}`},                                                // a float32
		{"d6 ff 00 00 00 01", `{"data":{"sec":1,"nsec":0}}`},                              // timestamp 32
		{"d7 ff 00 00 00 14 00 00 00 03", `{"data":{"sec":3,"nsec":5}}`},                  // timestamp 64
		{"c7 0c ff 00 00 00 07 ff ff ff ff ff ff ff ff", `{"data":{"sec":-1,"nsec":7}}`},  // timestamp 96
		{"d7 ff ee 6b 28 00 00 00 00 00", `{"data":{"$ext":-1,"$bytes":"7msoAAAAAAA="}}`}, // nanoseconds 1e9: not a time
		{"d4 01 01", `{"data":{"$ext":1,"$bytes":"AQ=="}}`},                               // any other ext
		{"83 01 02 c4 01 41 03 a1 0a 04", `{"1":2,"$bytes:QQ==":3,"\n":4}`},               // keys as ToJSON
		{"82 a1 61 01 a1 61 02", `{"a":1,"a":2}`},                                         // duplicates kept
		{"81 a4 74 69 6d 65 d6 ff 00 00 00 02", `{"time":{"sec":2,"nsec":0}}`},            // a time member
	} {
		out, err := msgjson.ToFoxgloveJSON([]byte("x"), unhex(t, tc.msgpack), nil)
		if err != nil || string(out) != "x"+tc.want {
			t.Errorf("ToFoxgloveJSON(%s) = %s, %v; want %s", tc.msgpack, out, err, tc.want)
		}
	}
	for _, tc := range []struct {
		msgpack string
		want    error
		at      string
	}{
		{"", msgjson.ErrTruncated, "byte 0"},
		{"01 02", msgjson.ErrTrailing, "byte 1"},
		{"81 a1 61 c1", msgjson.ErrInvalid, "byte 3"},
		{"92 01", msgjson.ErrTruncated, "byte 2"},
		{"d6 ff 00", msgjson.ErrTruncated, "byte 0"},
		{strings.Repeat("91 ", msgjson.MaxDepth+1) + "01", msgjson.ErrTooDeep, ""},
	} {
		out, err := msgjson.ToFoxgloveJSON([]byte("x"), unhex(t, tc.msgpack), msgjson.NewSchema())
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.at) || string(out) != "x" {
			t.Errorf("ToFoxgloveJSON(%.30s) = %q, %v; want %v at %s", tc.msgpack, out, err, tc.want, tc.at)
		}
	}
}

// observe renders each JSON payload (packed by FromJSON) or, for a string
// starting with "hex:", msgpack payload, and returns the renderings.
func observe(t *testing.T, s *msgjson.Schema, payloads ...string) []string {
	t.Helper()
	var out []string
	for _, p := range payloads {
		var msg []byte
		if h, ok := strings.CutPrefix(p, "hex:"); ok {
			msg = unhex(t, h)
		} else {
			var err error
			if msg, err = msgjson.FromJSON(nil, []byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := msgjson.ToFoxgloveJSON(nil, msg, s)
		if err != nil {
			t.Fatalf("ToFoxgloveJSON(%s): %v", p, err)
		}
		out = append(out, string(b))
	}
	return out
}

// checkSchema checks that s's schema is one Foxglove reads and that every
// rendering is valid against it, and returns the schema.
func checkSchema(t *testing.T, s *msgjson.Schema, renderings []string) string {
	t.Helper()
	schema := s.AppendJSON(nil, "t")
	if err := mcapcheck.FoxgloveSchema(schema); err != nil {
		t.Errorf("Foxglove would refuse %s: %v", schema, err)
	}
	for _, r := range renderings {
		if err := mcapcheck.ValidJSON(schema, []byte(r)); err != nil {
			t.Errorf("%s is not valid against %s: %v", r, schema, err)
		}
	}
	return string(schema)
}

func TestSchemaWidening(t *testing.T) {
	s := msgjson.NewSchema()
	if got := string(s.AppendJSON(nil, "empty")); got != `{"title":"empty","type":"object","properties":{}}` {
		t.Errorf("empty schema %s", got)
	}
	const prefix = `{"title":"t","type":"object","properties":`
	var seen []string
	for _, step := range []struct{ payload, props string }{
		{`{"x":1,"s":"a","b":true,"o":{"y":1.5},"a":[1,2],"n":null,"e":[]}`,
			// null and the empty array say nothing Foxglove can use yet.
			`{"x":{"type":"integer"},"s":{"type":"string"},"b":{"type":"boolean"},"o":{"type":"object","properties":{"y":{"type":"number"}}},"a":{"type":"array","items":{"type":"integer"}}}`},
		{`{"x":2.5}`, // integer widens to number
			`{"x":{"type":"number"},"s":{"type":"string"},"b":{"type":"boolean"},"o":{"type":"object","properties":{"y":{"type":"number"}}},"a":{"type":"array","items":{"type":"integer"}}}`},
		{"hex:81 a1 73 c4 01 00", // bytes where there was text: a plain string
			`{"x":{"type":"number"},"s":{"type":"string"},"b":{"type":"boolean"},"o":{"type":"object","properties":{"y":{"type":"number"}}},"a":{"type":"array","items":{"type":"integer"}}}`},
		{`{"b":1}`, // two types: left out
			`{"x":{"type":"number"},"s":{"type":"string"},"o":{"type":"object","properties":{"y":{"type":"number"}}},"a":{"type":"array","items":{"type":"integer"}}}`},
		{`{"a":[1.5,[1]]}`, // an array holding an array: left out
			`{"x":{"type":"number"},"s":{"type":"string"},"o":{"type":"object","properties":{"y":{"type":"number"}}}}`},
		{`{"o":{"z":"q"},"e":[{"k":1}]}`, // members added at any depth; elements seen at last
			`{"x":{"type":"number"},"s":{"type":"string"},"o":{"type":"object","properties":{"y":{"type":"number"},"z":{"type":"string"}}},"e":{"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}}}`},
		{`{"x":null}`, // null: left out from now on
			`{"s":{"type":"string"},"o":{"type":"object","properties":{"y":{"type":"number"},"z":{"type":"string"}}},"e":{"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}}}`},
		{`7`, // not a map: wrapped
			`{"s":{"type":"string"},"o":{"type":"object","properties":{"y":{"type":"number"},"z":{"type":"string"}}},"e":{"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}},"data":{"type":"integer"}}`},
	} {
		seen = append(seen, observe(t, s, step.payload)...)
		if got := checkSchema(t, s, seen); got != prefix+step.props+"}" {
			t.Errorf("after %s:\n got %s\nwant %s", step.payload, got, prefix+step.props+"}")
		}
		// A payload seen before changes nothing: inference is a fixed point.
		w := s.Widenings()
		observe(t, s, step.payload)
		if s.Widenings() != w {
			t.Errorf("%s widened the schema a second time", step.payload)
		}
	}
}

func TestSchemaBytes(t *testing.T) {
	s := msgjson.NewSchema()
	r := observe(t, s, "hex:82 a3 69 6d 67 c4 02 ff d8 a4 6c 69 73 74 92 c4 01 00 a3 ff fe 41")
	const want = `{"title":"t","type":"object","properties":{"img":{"type":"string","contentEncoding":"base64"},"list":{"type":"array","items":{"type":"string"}}}}`
	if got := checkSchema(t, s, r); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestSchemaClone(t *testing.T) {
	s := msgjson.NewSchema()
	observe(t, s, `{"a":{"b":[1]}}`)
	c := s.Clone()
	observe(t, c, `{"a":{"b":[1.5],"c":true}}`)
	if got := string(s.AppendJSON(nil, "t")); strings.Contains(got, "number") || strings.Contains(got, `"c"`) {
		t.Errorf("widening a clone changed the original: %s", got)
	}
	if got := string(c.AppendJSON(nil, "t")); !strings.Contains(got, `"b":{"type":"array","items":{"type":"number"}},"c":{"type":"boolean"}`) {
		t.Errorf("clone: %s", got)
	}
}

// TestSchemaLimits: hostile payloads cannot grow a schema without bound;
// what lies beyond the limits is left out, and every payload stays valid.
func TestSchemaLimits(t *testing.T) {
	wide := func(prefix string, n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"%s%d":%d`, prefix, i, i)
		}
		return b.String() + "}"
	}
	deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
	long := `{"` + strings.Repeat("n", 300) + `":1,"short":1}`
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf(`{"o%d":%s}`, i, wide("k", 300)))
	}
	for name, payloads := range map[string][]string{
		"members": {wide("k", 600)},
		"depth":   {deep, strings.Repeat("[", 40) + "1" + strings.Repeat("]", 40)},
		"name":    {long},
		"nodes":   many,
	} {
		t.Run(name, func(t *testing.T) {
			s := msgjson.NewSchema()
			schema := checkSchema(t, s, observe(t, s, payloads...))
			types := strings.Count(schema, `"type"`)
			switch name {
			case "members":
				if types != 1+512 || !strings.Contains(schema, `"k511"`) || strings.Contains(schema, `"k512"`) {
					t.Errorf("%d types described", types)
				}
			case "depth":
				if types > 34 {
					t.Errorf("%d levels described", types)
				}
			case "name":
				if types != 2 || !strings.Contains(schema, `"short"`) {
					t.Errorf("schema %s", schema)
				}
			case "nodes":
				if types > 4097 || len(schema) > 200_000 {
					t.Errorf("%d types, %d bytes", types, len(schema))
				}
			}
		})
	}
}

type fixInner struct {
	V float32 `msgpack:"v"`
}

type FixBase struct {
	ID int `msgpack:"id"`
}

type fixCustom struct{ b byte }

func (c fixCustom) EncodeMsgpack(e *msgpack.Encoder) error { return e.EncodeString("custom") }

type fixTree struct {
	Kids []fixTree `msgpack:"kids"`
	N    int       `msgpack:"n"`
}

type fixSample struct {
	FixBase
	Lat      float64           `msgpack:"lat"`
	Label    string            `msgpack:"label,omitempty"`
	Raw      []byte            `msgpack:"raw"`
	Fixed    [4]byte           `msgpack:"fixed"`
	At       time.Time         `msgpack:"at"`
	In       fixInner          `msgpack:"in"`
	Ptr      *fixInner         `msgpack:"ptr"`
	List     []int16           `msgpack:"list"`
	Grid     [][]float64       `msgpack:"grid"`
	Tags     map[string]string `msgpack:"tags"`
	Any      any               `msgpack:"any"`
	Custom   fixCustom         `msgpack:"custom"`
	Addr     netip.Addr        `msgpack:"addr"` // a BinaryMarshaler
	Tree     fixTree           `msgpack:"tree"`
	Skip     int               `msgpack:"-"`
	hidden   int
	Untagged bool
	Dur      time.Duration `msgpack:"dur"`
}

func TestTypeSchema(t *testing.T) {
	s, err := msgjson.TypeSchema(reflect.TypeFor[*fixSample]())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"title":"fix","type":"object","properties":{` +
		`"id":{"type":"integer"},"lat":{"type":"number"},"label":{"type":"string"},` +
		`"raw":{"type":"string","contentEncoding":"base64"},"fixed":{"type":"string","contentEncoding":"base64"},` +
		`"at":{"type":"object","properties":{"sec":{"type":"integer"},"nsec":{"type":"integer"}}},` +
		`"in":{"type":"object","properties":{"v":{"type":"number"}}},"ptr":{"type":"object","properties":{"v":{"type":"number"}}},` +
		`"list":{"type":"array","items":{"type":"integer"}},"tags":{"type":"object","properties":{}},` +
		`"addr":{"type":"string","contentEncoding":"base64"},"tree":{"type":"object","properties":{"n":{"type":"integer"}}},` +
		`"Untagged":{"type":"boolean"},"dur":{"type":"integer"}}}`
	if got := string(s.AppendJSON(nil, "fix")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// The type's messages, as the msgpack library encodes them for a typed
	// publisher, fit: rendering them changes the schema only where the type
	// could not tell, here the member that encodes itself.
	v := fixSample{
		FixBase: FixBase{ID: 7}, Lat: -33.9, Raw: []byte{0xff}, At: time.Unix(1764079200, 5), In: fixInner{1.5},
		Ptr: &fixInner{2}, List: []int16{-1, 300}, Tags: map[string]string{}, Addr: netip.MustParseAddr("fe80::1"),
		Tree: fixTree{N: 1, Kids: []fixTree{}}, Untagged: true, Dur: time.Second,
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(&v); err != nil {
		t.Fatal(err)
	}
	out, err := msgjson.ToFoxgloveJSON(nil, buf.Bytes(), s)
	if err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, `"addr"`, `"custom":{"type":"string"},"addr"`, 1)
	if got := string(s.AppendJSON(nil, "fix")); got != want {
		t.Errorf("a message of the type changed the schema:\n%s\n%s", got, out)
	}
	if err := mcapcheck.ValidJSON([]byte(want), out); err != nil {
		t.Errorf("%s: %v", out, err)
	}

	// A message that does not match (a nil slice, sent as null) makes it
	// describe less.
	v.List = nil
	buf.Reset()
	if err := enc.Encode(&v); err != nil {
		t.Fatal(err)
	}
	out2, _ := msgjson.ToFoxgloveJSON(nil, buf.Bytes(), s)
	if got := checkSchema(t, s, []string{string(out), string(out2)}); strings.Contains(got, `"list"`) {
		t.Errorf("list still described: %s", got)
	}

	if _, err := msgjson.TypeSchema(reflect.TypeFor[[]int]()); err == nil {
		t.Error("TypeSchema of a slice type: no error")
	}
}

// Embedded structs are inlined as the msgpack library inlines them.
func TestTypeSchemaEmbedded(t *testing.T) {
	type A struct {
		X int `msgpack:"x"`
		Y int `msgpack:"y"`
	}
	type shadowed struct {
		Y string `msgpack:"y"`
		A        // its y is shadowed: not inlined, but encoded as member "A"
	}
	type forced struct {
		Y string              `msgpack:"y"`
		A `msgpack:",inline"` // inlined but for y
	}
	type named struct {
		A `msgpack:"a,noinline"`
	}
	for _, v := range []any{shadowed{}, forced{}, named{}} {
		s, err := msgjson.TypeSchema(reflect.TypeOf(v))
		if err != nil {
			t.Fatal(err)
		}
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		before := string(s.AppendJSON(nil, "t"))
		if _, err := msgjson.ToFoxgloveJSON(nil, b, s); err != nil {
			t.Fatal(err)
		}
		if after := string(s.AppendJSON(nil, "t")); after != before {
			t.Errorf("%T: schema %s, but its messages need %s", v, before, after)
		}
	}
}

func FuzzToFoxgloveJSON(f *testing.F) {
	for _, s := range []string{
		everything, "c0", "93 01 a1 78 c0", "81 92 01 02 01", "a3 ff fe 41", "d6 ff 00 00 00 01",
		"cb 7f f8 00 00 00 00 00 00", "ca 3d cc cc cd", "dd ff ff ff ff 01", "01 02", "c1",
		"82 a1 61 91 01 a1 62 c4 01 41", "81 a1 61 81 a1 62 c0",
	} {
		f.Add(unhex(f, s))
	}
	// Payloads seen before the fuzzed one, which must stay valid.
	prior := [][]byte{
		msgp.AppendMapHeader(nil, 0),
		unhex(f, "83 a1 61 01 a1 62 92 a1 78 a1 79 a1 63 81 a1 64 cb 3f f8 00 00 00 00 00 00"),
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := msgjson.NewSchema()
		var seen [][]byte
		for _, p := range prior {
			out, err := msgjson.ToFoxgloveJSON(nil, p, s)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, out)
		}
		out, err := msgjson.ToFoxgloveJSON([]byte("keep"), msg, s)
		if err != nil {
			if string(out) != "keep" {
				t.Fatalf("on error %v returned %q", err, out)
			}
			// ToJSON agrees that msg is not one msgpack value (unless it
			// is nested to the limit, which wrapping passes).
			j, rest, jerr := msgjson.ToJSON(nil, msg)
			if jerr == nil && len(rest) == 0 && !errors.Is(err, msgjson.ErrTooDeep) {
				t.Fatalf("ToFoxgloveJSON: %v, on what ToJSON renders as %s", err, j)
			}
		} else {
			out = out[len("keep"):]
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(out, &obj); err != nil {
				t.Fatalf("ToFoxgloveJSON(% x) = %s, not a JSON object: %v", msg, out, err)
			}
			if n := len(msg); len(out) > 16*n+16 {
				t.Fatalf("rendered %d bytes as %d", n, len(out))
			}
			// The same without a schema: the rendering does not depend on it.
			if plain, err := msgjson.ToFoxgloveJSON(nil, msg, nil); err != nil || !bytes.Equal(plain, out) {
				t.Fatalf("without a schema: %s, %v; with one: %s", plain, err, out)
			}
			seen = append(seen, out)
			// Inference is a fixed point: seeing it again changes nothing.
			w := s.Widenings()
			if _, err := msgjson.ToFoxgloveJSON(nil, msg, s); err != nil || s.Widenings() != w {
				t.Fatalf("a second look at % x widened the schema (%v)", msg, err)
			}
		}
		// Whatever was seen, even a payload that failed part way, every
		// rendering is valid against the schema, which Foxglove reads.
		schema := s.AppendJSON(nil, "fuzz")
		if err := mcapcheck.FoxgloveSchema(schema); err != nil {
			t.Fatalf("Foxglove would refuse %s: %v", schema, err)
		}
		for _, r := range seen {
			if err := mcapcheck.ValidJSON(schema, r); err != nil {
				t.Fatalf("%s not valid against %s: %v", r, schema, err)
			}
		}
	})
}

// A payload of a shape seen before renders without allocating: the
// recorder's hot path.
func TestToFoxgloveJSONAllocs(t *testing.T) {
	msg := foxSample(t)
	s := msgjson.NewSchema()
	buf, err := msgjson.ToFoxgloveJSON(nil, msg, s)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { buf, _ = msgjson.ToFoxgloveJSON(buf[:0], msg, s) }); n != 0 {
		t.Errorf("%v allocations per payload", n)
	}
}

func BenchmarkToFoxgloveJSON(b *testing.B) {
	msg := foxSample(b)
	s := msgjson.NewSchema()
	buf, _ := msgjson.ToFoxgloveJSON(nil, msg, s)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		buf, _ = msgjson.ToFoxgloveJSON(buf[:0], msg, s)
	}
}

// foxSample is a typed message with nested values, bytes and a time.
func foxSample(t testing.TB) []byte {
	msg, err := msgjson.FromJSON(nil, []byte(`{"lat":-33.89,"lon":151.19,"alt":12,"fix":{"sats":[1,2,3],"hdop":0.9},"name":"gps","timestamp":1764079200.123456}`))
	if err != nil {
		t.Fatal(err)
	}
	msg[0]++ // one more member:
	msg = msgp.AppendString(msg, "raw")
	msg = msgp.AppendBytes(msg, []byte{0xff, 0, 1, 2})
	msg[0]++
	msg = msgp.AppendString(msg, "at")
	return append(msg, 0xd6, 0xff, 0x69, 0x25, 0xb6, 0x60) // timestamp 32: 1764079200
}
