package msgjson_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/internal/msgjson"
)

func TestToJSON(t *testing.T) {
	tests := []struct {
		msgpack, want string
	}{
		{"c0", `null`},
		{"c2", `false`},
		{"c3", `true`},

		// Integers of every format, at their limits.
		{"00", `0`},
		{"7f", `127`},
		{"ff", `-1`},
		{"e0", `-32`},
		{"cc ff", `255`},
		{"cd ff ff", `65535`},
		{"ce ff ff ff ff", `4294967295`},
		{"cf ff ff ff ff ff ff ff ff", `18446744073709551615`},
		{"d0 80", `-128`},
		{"d0 7f", `127`},
		{"d1 80 00", `-32768`},
		{"d2 80 00 00 00", `-2147483648`},
		{"d3 80 00 00 00 00 00 00 00", `-9223372036854775808`},
		{"d3 7f ff ff ff ff ff ff ff", `9223372036854775807`},
		{"d3 ff ff ff ff ff ff ff ff", `-1`},

		// Floats as Python's repr writes them.
		{"cb 3f f8 00 00 00 00 00 00", `1.5`},
		{"cb 3f b9 99 99 99 99 99 9a", `0.1`},
		{"cb 3f f0 00 00 00 00 00 00", `1.0`},
		{"cb 40 59 00 00 00 00 00 00", `100.0`},
		{"cb 00 00 00 00 00 00 00 00", `0.0`},
		{"cb 80 00 00 00 00 00 00 00", `-0.0`},
		{"cb 43 41 c3 79 37 e0 80 00", `1e+16`},
		{"cb 43 0c 6b f5 26 34 00 00", `1000000000000000.0`},
		{"cb 3f 1a 36 e2 eb 1c 43 2d", `0.0001`},
		{"cb 3e e4 f8 b5 88 e3 68 f1", `1e-05`},
		{"cb 7e 37 e4 3c 88 00 75 9c", `1e+300`},
		{"cb 7e 41 eb 2d 66 00 58 35", `1.5e+300`},
		{"cb 7f f8 00 00 00 00 00 00", `"NaN"`},
		{"cb 7f f0 00 00 00 00 00 00", `"Infinity"`},
		{"cb ff f0 00 00 00 00 00 00", `"-Infinity"`},
		{"ca 3f c0 00 00", `1.5`},
		{"ca 3d cc cc cd", `0.1`}, // shortest as a float32
		{"ca 38 d1 b7 17", `0.0001`},
		{"ca 5a 0e 1b ca", `1e+16`},
		{"ca 7f 7f ff ff", `3.4028235e+38`},
		{"ca 80 00 00 00", `-0.0`},
		{"ca 7f c0 00 00", `"NaN"`},
		{"ca 7f 80 00 00", `"Infinity"`},
		{"ca ff 80 00 00", `"-Infinity"`},

		// Strings of every format.
		{"a0", `""`},
		{"a5 68 65 6c 6c 6f", `"hello"`},
		{"d9 03 61 62 63", `"abc"`},
		{"da 00 03 61 62 63", `"abc"`},
		{"db 00 00 00 03 61 62 63", `"abc"`},
		{"a6 68 c3 a9 6c 6c 6f", `"héllo"`},
		{"ac 22 5c 0a 0d 09 01 1f 08 2f 3c 26 7f", `"\"\\\n\r\t\u0001\u001f\u0008/<&` + "\x7f\""},
		{"a3 e2 80 a8", "\"\u2028\""},

		// Bytes: non-UTF-8 str and bin.
		{"a3 ff fe 41", `{"$bytes":"//5B"}`},
		{"a2 c3 28", `{"$bytes":"wyg="}`},
		{"d9 01 80", `{"$bytes":"gA=="}`},
		{"c4 00", `{"$bytes":""}`},
		{"c4 03 ff fe 41", `{"$bytes":"//5B"}`},
		{"c4 03 61 62 63", `{"$bytes":"YWJj"}`}, // bin even if UTF-8
		{"c5 00 01 41", `{"$bytes":"QQ=="}`},
		{"c6 00 00 00 01 41", `{"$bytes":"QQ=="}`},

		// Ext of every format.
		{"d4 05 01", `{"$ext":5,"$bytes":"AQ=="}`},
		{"d5 ff 01 02", `{"$ext":-1,"$bytes":"AQI="}`},
		{"d6 ff 00 00 00 01", `{"$ext":-1,"$bytes":"AAAAAQ=="}`},
		{"d7 80 00 00 00 00 00 00 00 01", `{"$ext":-128,"$bytes":"AAAAAAAAAAE="}`},
		{"d8 7f 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f", `{"$ext":127,"$bytes":"AAECAwQFBgcICQoLDA0ODw=="}`},
		{"c7 00 07", `{"$ext":7,"$bytes":""}`},
		{"c7 01 07 41", `{"$ext":7,"$bytes":"QQ=="}`},
		{"c8 00 01 07 41", `{"$ext":7,"$bytes":"QQ=="}`},
		{"c9 00 00 00 01 07 41", `{"$ext":7,"$bytes":"QQ=="}`},

		// Arrays.
		{"90", `[]`},
		{"93 01 a1 78 c0", `[1,"x",null]`},
		{"dc 00 02 01 02", `[1,2]`},
		{"dd 00 00 00 01 c0", `[null]`},
		{"92 91 90 80", `[[[]],{}]`},

		// Maps, in wire order, duplicates kept.
		{"80", `{}`},
		{"82 a1 7a 01 a1 61 02", `{"z":1,"a":2}`},
		{"82 a1 61 01 a1 61 02", `{"a":1,"a":2}`},
		{"de 00 01 a1 61 01", `{"a":1}`},
		{"df 00 00 00 01 a1 61 01", `{"a":1}`},
		{"81 a1 61 81 a1 62 92 90 80", `{"a":{"b":[[],{}]}}`},

		// Keys that are not UTF-8 strings.
		{"81 a2 0a 22 01", `{"\n\"":1}`},
		{"81 d9 01 61 01", `{"a":1}`},
		{"82 01 a1 61 ff a1 62", `{"1":"a","-1":"b"}`},
		{"81 cf ff ff ff ff ff ff ff ff c0", `{"18446744073709551615":null}`},
		{"82 c3 01 c2 02", `{"true":1,"false":2}`},
		{"81 c0 01", `{"null":1}`},
		{"81 cb 3f f8 00 00 00 00 00 00 01", `{"1.5":1}`},
		{"81 cb 7f f8 00 00 00 00 00 00 01", `{"NaN":1}`},
		{"81 ca ff 80 00 00 01", `{"-Infinity":1}`},
		{"81 a3 ff fe 41 01", `{"$bytes://5B":1}`},
		{"81 c4 01 41 01", `{"$bytes:QQ==":1}`},
		{"81 c4 00 01", `{"$bytes:":1}`},
		{"81 92 01 02 01", `{"[1,2]":1}`},
		{"81 91 a1 22 01", `{"[\"\\\"\"]":1}`},
		{"81 81 a1 61 01 02", `{"{\"a\":1}":2}`},
		{"81 d4 05 01 01", `{"{\"$ext\":5,\"$bytes\":\"AQ==\"}":1}`},
		{"81 91 a3 ff fe 41 01", `{"[{\"$bytes\":\"//5B\"}]":1}`},
		// Keys within keys are not quoted again.
		{"81 81 01 02 03", `{"{1:2}":3}`},
		{"81 81 81 01 02 03 04", `{"{{1:2}:3}":4}`},
		{"81 91 81 c0 c3 01", `{"[{null:true}]":1}`},
		{"81 81 a3 ff fe 41 01 02", `{"{\"$bytes://5B\":1}":2}`},
		{"81 81 81 a1 22 01 02 03", `{"{{\"\\\"\":1}:2}":3}`},
	}
	for _, tt := range tests {
		msg := unhex(t, tt.msgpack)
		got, rest, err := msgjson.ToJSON([]byte("keep"), msg)
		if err != nil {
			t.Errorf("ToJSON(% x): %v", msg, err)
			continue
		}
		if want := "keep" + tt.want; string(got) != want {
			t.Errorf("ToJSON(% x)\n got %s\nwant %s", msg, got, want)
		}
		if len(rest) != 0 {
			t.Errorf("ToJSON(% x) left % x", msg, rest)
		}
		if !json.Valid(got[4:]) {
			t.Errorf("ToJSON(% x) = %s, not valid JSON", msg, got[4:])
		}
	}
}

func TestToJSONRest(t *testing.T) {
	msg := unhex(t, "01 a1 61 92 c3 c0 a3 ff fe 41")
	var got []string
	for len(msg) > 0 {
		out, rest, err := msgjson.ToJSON(nil, msg)
		if err != nil {
			t.Fatalf("ToJSON(% x): %v", msg, err)
		}
		got = append(got, string(out))
		msg = rest
	}
	want := []string{`1`, `"a"`, `[true,null]`, `{"$bytes":"//5B"}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("values: got %q, want %q", got, want)
	}
}

func TestToJSONErrors(t *testing.T) {
	tests := []struct {
		msgpack string
		msg     string
		is      error
	}{
		{"", "payload byte 0: truncated msgpack value", msgjson.ErrTruncated},
		{"c1", "payload byte 0: invalid msgpack byte 0xc1", msgjson.ErrInvalid},
		{"93 01 02 c1", "payload byte 3: invalid msgpack byte 0xc1", msgjson.ErrInvalid},
		{"82 a1 61 01 a1 62", "payload byte 6: truncated msgpack value", msgjson.ErrTruncated},
		{"81 a1 61 92 01 da 00 05 61", "payload byte 5: truncated msgpack value", msgjson.ErrTruncated},
		{"dd ff ff ff ff 01 02 03 04 05", "payload byte 10: truncated msgpack value", msgjson.ErrTruncated},
	}
	for _, tt := range tests {
		msg := unhex(t, tt.msgpack)
		out, rest, err := msgjson.ToJSON([]byte("keep"), msg)
		if err == nil {
			t.Errorf("ToJSON(% x) = %s, want error", msg, out)
			continue
		}
		if err.Error() != tt.msg || !errors.Is(err, tt.is) {
			t.Errorf("ToJSON(% x) error %q, want %q wrapping %q", msg, err, tt.msg, tt.is)
		}
		if string(out) != "keep" || !bytes.Equal(rest, msg) {
			t.Errorf("ToJSON(% x) on error returned %q, % x; want dst and msg", msg, out, rest)
		}
	}
}

// everything is one msgpack value holding every format.
const everything = "de 00 0b" +
	"a1 61 9f c0 c2 c3 00 7f ff e0 cc ff cd ff ff ce ff ff ff ff cf ff ff ff ff ff ff ff ff" +
	"   d0 80 d1 80 00 d2 80 00 00 00 d3 80 00 00 00 00 00 00 00" +
	"a1 62 dc 00 06 ca 3f c0 00 00 cb 3f f8 00 00 00 00 00 00 a0 d9 01 61 da 00 01 61 db 00 00 00 01 61" +
	"a1 63 dd 00 00 00 06 a3 ff fe 41 c4 01 41 c5 00 01 41 c6 00 00 00 01 41 c7 01 07 41 c8 00 01 07 41" +
	"a1 64 95 c9 00 00 00 01 07 41 d4 01 01 d5 01 01 02 d6 ff 00 00 00 01 d7 ff 00 00 00 00 00 00 00 01" +
	"a1 65 d8 01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f" +
	"01 80 02 df 00 00 00 01 a1 66 de 00 00" +
	"c4 01 41 92 01 02 cb 7f f8 00 00 00 00 00 00 c3" +
	"91 01 81 a1 61 01 c0 c2"

const everythingJSON = `{"a":[null,false,true,0,127,-1,-32,255,65535,4294967295,18446744073709551615,` +
	`-128,-32768,-2147483648,-9223372036854775808],"b":[1.5,1.5,"","a","a","a"],` +
	`"c":[{"$bytes":"//5B"},{"$bytes":"QQ=="},{"$bytes":"QQ=="},{"$bytes":"QQ=="},` +
	`{"$ext":7,"$bytes":"QQ=="},{"$ext":7,"$bytes":"QQ=="}],` +
	`"d":[{"$ext":7,"$bytes":"QQ=="},{"$ext":1,"$bytes":"AQ=="},{"$ext":1,"$bytes":"AQI="},` +
	`{"$ext":-1,"$bytes":"AAAAAQ=="},{"$ext":-1,"$bytes":"AAAAAAAAAAE="}],` +
	`"e":{"$ext":1,"$bytes":"AAECAwQFBgcICQoLDA0ODw=="},"1":{},"2":{"f":{}},` +
	`"$bytes:QQ==":[1,2],"NaN":true,"[1]":{"a":1},"null":false}`

func TestToJSONTruncated(t *testing.T) {
	msg := unhex(t, everything)
	out, rest, err := msgjson.ToJSON(nil, msg)
	if err != nil || len(rest) != 0 || string(out) != everythingJSON {
		t.Fatalf("ToJSON(everything) = %s, % x, %v\nwant %s", out, rest, err, everythingJSON)
	}
	// Every proper prefix of a value is an incomplete value.
	for n := range len(msg) {
		prefix := msg[:n:n] // so that reading past the end would panic
		out, rest, err := msgjson.ToJSON([]byte("keep"), prefix)
		if !errors.Is(err, msgjson.ErrTruncated) {
			t.Errorf("ToJSON(first %d bytes): got error %v, want ErrTruncated", n, err)
		}
		if string(out) != "keep" || !bytes.Equal(rest, prefix) {
			t.Errorf("ToJSON(first %d bytes) returned %q, % x; want dst and msg", n, out, rest)
		}
	}
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestToJSONHostile(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		is   error
	}{
		{"array32 of 2^32-1", unhex(t, "dd ff ff ff ff 01 02 03 04 05"), msgjson.ErrTruncated},
		{"map32 of 2^32-1", unhex(t, "df ff ff ff ff 01 02 03 04 05"), msgjson.ErrTruncated},
		{"str32 of 2^32-1", unhex(t, "db ff ff ff ff 01 02 03 04 05"), msgjson.ErrTruncated},
		{"bin32 of 2^32-1", unhex(t, "c6 ff ff ff ff 01 02 03 04 05"), msgjson.ErrTruncated},
		{"ext32 of 2^32-1", unhex(t, "c9 ff ff ff ff 01 02 03 04 05"), msgjson.ErrTruncated},
		{"str32 of 2^31", unhex(t, "db 80 00 00 00 01 02 03 04 05"), msgjson.ErrTruncated},
		{"100000 nested arrays", bytes.Repeat([]byte{0x91}, 100000), msgjson.ErrTooDeep},
		{"100000 nested maps", bytes.Repeat([]byte{0x81, 0x01}, 100000), msgjson.ErrTooDeep},
		{"100000 nested map keys", bytes.Repeat([]byte{0x81}, 100000), msgjson.ErrTooDeep},
		{"100000 nested array32", bytes.Repeat(unhex(t, "dd ff ff ff ff"), 100000), msgjson.ErrTooDeep},
	}
	for _, tt := range tests {
		var err error
		n := allocated(func() { _, _, err = msgjson.ToJSON(nil, tt.msg) })
		if !errors.Is(err, tt.is) {
			t.Errorf("%s: got error %v, want %v", tt.name, err, tt.is)
		}
		// The output up to the error is at most MaxDepth brackets.
		if n > 1<<20 {
			t.Errorf("%s: allocated %d bytes", tt.name, n)
		}
	}
}

func TestToJSONNestedKeys(t *testing.T) {
	// Maps as keys of maps as keys..., with the str `"` innermost:
	// quoting every level would double the backslashes each time.
	const levels = 60
	msg := append(bytes.Repeat([]byte{0x81}, levels), 0xa1, '"')
	msg = append(msg, bytes.Repeat([]byte{0x01}, levels)...)
	out, _, err := msgjson.ToJSON(nil, msg)
	if err != nil || !json.Valid(out) {
		t.Fatalf("ToJSON = %s, %v", out, err)
	}
	if len(out) > 10*len(msg) {
		t.Errorf("%d bytes rendered as %d", len(msg), len(out))
	}
}

func TestToJSONDepth(t *testing.T) {
	msg := append(bytes.Repeat([]byte{0x91}, msgjson.MaxDepth-1), 0x90)
	out, _, err := msgjson.ToJSON(nil, msg)
	if err != nil {
		t.Fatalf("%d nested arrays: %v", msgjson.MaxDepth, err)
	}
	// encoding/json reads whatever ToJSON writes.
	if !json.Valid(out) {
		t.Errorf("%d nested arrays: output not valid JSON", msgjson.MaxDepth)
	}
	_, _, err = msgjson.ToJSON(nil, append([]byte{0x91}, msg...))
	if want := fmt.Sprintf("payload byte %d: nested too deeply", msgjson.MaxDepth); err == nil || err.Error() != want {
		t.Errorf("%d nested arrays: got %v, want %s", msgjson.MaxDepth+1, err, want)
	}
}

func TestToJSONAllocs(t *testing.T) {
	msg := unhex(t, everything)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := msgjson.ToJSON(buf, msg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ToJSON allocated %v times with room in dst", allocs)
	}
}

func TestRoundTrip(t *testing.T) {
	docs := []string{
		`{"a":1,"b":[true,null,"x"]}`,
		`{ "z" : 1 , "a" : [ -1, -33, 128, 18446744073709551615, -9223372036854775808 ] }`,
		`{"a":1,"a":2}`,
		`"héllo \"world\"\n\t\\ \u0001 😀 <&>"`,
		`[[],{},"",[{"x":{}}]]`,
		`[1.5, 0.1, 1.0, -0.0, 1e+16, 1e-05, 1.5e+300, 1000000000000000.0]`, // as Python writes floats
		`null`, `true`, `false`, `0`,
	}
	for _, doc := range docs {
		packed, err := msgjson.FromJSON(nil, []byte(doc))
		if err != nil {
			t.Fatalf("FromJSON(%s): %v", doc, err)
		}
		got, rest, err := msgjson.ToJSON(nil, packed)
		if err != nil || len(rest) != 0 {
			t.Fatalf("ToJSON(FromJSON(%s)) = %s, % x, %v", doc, got, rest, err)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Errorf("round trip\n got %s\nwant %s", got, want.Bytes())
		}
	}
}

// TestFloatsMatchPythonRepr compares float64 rendering with Python's repr.
func TestFloatsMatchPythonRepr(t *testing.T) {
	needPythonMsgpack(t)
	var floats []float64
	for e := -330; e <= 310; e++ {
		f, _ := strconv.ParseFloat("1e"+strconv.Itoa(e), 64)
		floats = append(floats, f, -f, math.Nextafter(f, 0), math.Nextafter(f, math.Inf(1)), 1.5*f, f/3)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		floats = append(floats, math.Float64frombits(r.Uint64()), r.NormFloat64()*1e6, float64(r.Int64N(1e17)))
	}
	floats = append(floats, 0, math.MaxFloat64, math.SmallestNonzeroFloat64, 1<<53, 1<<53+2)

	var in strings.Builder
	for _, f := range floats {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			fmt.Fprintf(&in, "%016x\n", math.Float64bits(f))
		}
	}
	cmd := exec.Command(python3, "-c", "import struct,sys\n"+
		"for l in sys.stdin: print(repr(struct.unpack('>d', bytes.fromhex(l.strip()))[0]))")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	bits := strings.Fields(in.String())
	reprs := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(reprs) != len(bits) {
		t.Fatalf("python printed %d lines for %d floats", len(reprs), len(bits))
	}
	for i, repr := range reprs {
		msg := binary.BigEndian.AppendUint64([]byte{0xcb}, 0)
		u, _ := strconv.ParseUint(bits[i], 16, 64)
		binary.BigEndian.PutUint64(msg[1:], u)
		got, _, err := msgjson.ToJSON(nil, msg)
		if err != nil || string(got) != repr {
			t.Errorf("ToJSON(float64 %s) = %s, %v; Python's repr is %s", bits[i], got, err, repr)
		}
	}
}

func BenchmarkToJSON(b *testing.B) {
	msg := unhex(b, everything)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, _, err := msgjson.ToJSON(buf, msg); err != nil {
			b.Fatal(err)
		}
	}
}
