package msgjson_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mcl-go/mcl/internal/msgjson"
)

// unhex decodes hex digits, ignoring spaces.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// strOf returns a JSON string of n 'x' and its expected msgpack data.
func strOf(n int) (json, data string) {
	x := strings.Repeat("x", n)
	return `"` + x + `"`, hex.EncodeToString([]byte(x))
}

func TestFromJSON(t *testing.T) {
	s31, x31 := strOf(31)
	s32, x32 := strOf(32)
	s40, x40 := strOf(40)
	s255, x255 := strOf(255)
	s256, x256 := strOf(256)
	s65535, x65535 := strOf(65535)
	s65536, x65536 := strOf(65536)
	tests := []struct {
		json, want string
	}{
		{`{"a":1,"b":[true,null,"x"]}`, "82 a1 61 01 a1 62 93 c3 c0 a1 78"},
		{`false`, "c2"},

		// Strings: old spec, so no str8 (0xd9).
		{`""`, "a0"},
		{s31, "bf" + x31},
		{s32, "da 00 20" + x32},
		{s40, "da 00 28" + x40},
		{s255, "da 00 ff" + x255},
		{s256, "da 01 00" + x256},
		{s65535, "da ff ff" + x65535},
		{s65536, "db 00 01 00 00" + x65536},
		{`"héllo"`, "a6 68 c3 a9 6c 6c 6f"},
		{`"h\u00e9llo"`, "a6 68 c3 a9 6c 6c 6f"},
		{`"\ud83d\ude00"`, "a4 f0 9f 98 80"},
		{`"\"\\\n\u0041"`, "a4 22 5c 0a 41"},
		{`"\ud800"`, "a3 ef bf bd"}, // lone surrogate → U+FFFD

		// Non-negative integers: fixint, then unsigned formats.
		{`0`, "00"},
		{`-0`, "00"},
		{`127`, "7f"},
		{`128`, "cc 80"},
		{`255`, "cc ff"},
		{`256`, "cd 01 00"},
		{`65535`, "cd ff ff"},
		{`65536`, "ce 00 01 00 00"},
		{`4294967295`, "ce ff ff ff ff"},
		{`4294967296`, "cf 00 00 00 01 00 00 00 00"},
		{`9223372036854775807`, "cf 7f ff ff ff ff ff ff ff"},
		{`18446744073709551615`, "cf ff ff ff ff ff ff ff ff"},

		// Negative integers: fixint, then signed formats.
		{`-1`, "ff"},
		{`-32`, "e0"},
		{`-33`, "d0 df"},
		{`-128`, "d0 80"},
		{`-129`, "d1 ff 7f"},
		{`-32768`, "d1 80 00"},
		{`-32769`, "d2 ff ff 7f ff"},
		{`-2147483648`, "d2 80 00 00 00"},
		{`-2147483649`, "d3 ff ff ff ff 7f ff ff ff"},
		{`-9223372036854775808`, "d3 80 00 00 00 00 00 00 00"},

		// Anything with a fraction or exponent is a float64.
		{`1.5`, "cb 3f f8 00 00 00 00 00 00"},
		{`1e300`, "cb 7e 37 e4 3c 88 00 75 9c"},
		{`1.0`, "cb 3f f0 00 00 00 00 00 00"},
		{`1E2`, "cb 40 59 00 00 00 00 00 00"},
		{`-0.0`, "cb 80 00 00 00 00 00 00 00"},
		{`0.1`, "cb 3f b9 99 99 99 99 99 9a"},
		{`1e-400`, "cb 00 00 00 00 00 00 00 00"}, // underflows to 0, as in Python

		// Containers.
		{`{"z":1,"a":2}`, "82 a1 7a 01 a1 61 02"},
		{`{"a":1,"a":2}`, "82 a1 61 01 a1 61 02"},
		{`{"a":{"b":[[],{}]}}`, "81 a1 61 81 a1 62 92 90 80"},
		{`{}`, "80"},
		{`[]`, "90"},
		{`[[[]]]`, "91 91 90"},
		{`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]`, "9f 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"},
		{`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]`, "dc 00 10 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10"},
		{
			`{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0}`,
			"de 00 10 a1 61 00 a1 62 00 a1 63 00 a1 64 00 a1 65 00 a1 66 00 a1 67 00 a1 68 00" +
				"a1 69 00 a1 6a 00 a1 6b 00 a1 6c 00 a1 6d 00 a1 6e 00 a1 6f 00 a1 70 00",
		},
		{" \t\r\n [ 1 , {\"a\" : null} ] \n", "92 01 81 a1 61 c0"},
	}
	for _, tt := range tests {
		prefix := []byte{0xee}
		got, err := msgjson.FromJSON(prefix, []byte(tt.json))
		if err != nil {
			t.Errorf("FromJSON(%.50s): %v", tt.json, err)
			continue
		}
		want := append([]byte{0xee}, unhex(t, tt.want)...)
		if !bytes.Equal(got, want) {
			t.Errorf("FromJSON(%.50s)\n got % x\nwant % x", tt.json, got, want)
		}
	}
}

func TestFromJSONArray65536(t *testing.T) {
	// 65535 elements fit array16, one more needs array32.
	for _, tt := range []struct {
		n      int
		header string
	}{{65535, "dc ff ff"}, {65536, "dd 00 01 00 00"}} {
		doc := "[" + strings.Repeat("0,", tt.n-1) + "0]"
		got, err := msgjson.FromJSON(nil, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		want := append(unhex(t, tt.header), make([]byte, tt.n)...)
		if !bytes.Equal(got, want) {
			t.Errorf("array of %d: got % x...", tt.n, got[:8])
		}
	}
}

func TestFromJSONDepth(t *testing.T) {
	ok := strings.Repeat("[", msgjson.MaxDepth) + strings.Repeat("]", msgjson.MaxDepth)
	if _, err := msgjson.FromJSON(nil, []byte(ok)); err != nil {
		t.Errorf("%d nested arrays: %v", msgjson.MaxDepth, err)
	}
	deep := strings.Repeat(`{"a":[`, 100000)
	_, err := msgjson.FromJSON(nil, []byte(deep))
	if !errors.Is(err, msgjson.ErrTooDeep) {
		t.Errorf("100000 nested arrays: got %v, want ErrTooDeep", err)
	}
}

func TestFromJSONErrors(t *testing.T) {
	tests := []struct {
		json string
		msg  string // the whole error message
		is   error  // if not nil, what the error wraps
	}{
		{`1 2`, "line 1, column 3: more than one JSON value", nil},
		{`{"a":1} {"b":2}`, "line 1, column 9: more than one JSON value", nil},
		{"[1]\n\n  x", "line 3, column 3: invalid character 'x' after top-level value", nil},
		{`1x`, "line 1, column 2: invalid character 'x' after top-level value", nil},
		{`{"a":1}}`, "line 1, column 8: invalid character '}' after top-level value", nil},
		{`[1 2]`, "line 1, column 4: invalid character '2' after array element", nil},
		{"{\n\"a\" 1}", "line 2, column 5: invalid character '1' after object key", nil},
		{`[1,]`, "line 1, column 4: invalid character ']' looking for beginning of value", nil},
		{`x`, "line 1, column 1: invalid character 'x' looking for beginning of value", nil},
		{`18446744073709551616`, "line 1, column 1: number out of range: 18446744073709551616", msgjson.ErrRange},
		{`[0, -9223372036854775809]`, "line 1, column 5: number out of range: -9223372036854775809", msgjson.ErrRange},
		{`{"a": 1e400}`, "line 1, column 7: number out of range: 1e400", msgjson.ErrRange},
		{``, "line 1, column 1: unexpected EOF", io.ErrUnexpectedEOF},
		{"  \n", "line 2, column 1: unexpected EOF", io.ErrUnexpectedEOF},
		{`[1,2`, "line 1, column 5: unexpected EOF", io.ErrUnexpectedEOF},
		{`{"a":`, "line 1, column 6: unexpected EOF", io.ErrUnexpectedEOF},
		{`"abc`, "", io.ErrUnexpectedEOF},
		{`nul`, "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		dst := []byte("keep")
		got, err := msgjson.FromJSON(dst, []byte(tt.json))
		if err == nil {
			t.Errorf("FromJSON(%q) = % x, want error", tt.json, got)
			continue
		}
		if tt.msg != "" && err.Error() != tt.msg {
			t.Errorf("FromJSON(%q) error\n got %q\nwant %q", tt.json, err, tt.msg)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("FromJSON(%q) error %q does not wrap %q", tt.json, err, tt.is)
		}
		if string(got) != "keep" {
			t.Errorf("FromJSON(%q) returned %q on error, want dst unchanged", tt.json, got)
		}
	}
}

// python3 is Debian's, which has python3-msgpack; the one on PATH may not.
const python3 = "/usr/bin/python3"

// needPythonMsgpack skips the test unless python3 can import msgpack.
func needPythonMsgpack(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python3); err != nil {
		t.Skipf("no %s: %v", python3, err)
	}
	if out, err := exec.Command(python3, "-c", "import msgpack").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import msgpack (install python3-msgpack): %v: %s", python3, err, out)
	}
}

// TestFromJSONMatchesPython compares FromJSON with msgpack-python, packing
// as Python 2 peers did. Documents avoid duplicate keys, which Python's
// json drops.
func TestFromJSONMatchesPython(t *testing.T) {
	needPythonMsgpack(t)
	s40, _ := strOf(40)
	s255, _ := strOf(255)
	s70000, _ := strOf(70000)
	docs := []string{
		`{"a":1,"b":[true,null,"x"]}`,
		`{"z":1,"y":{"x":[1,2,{"w":"v"}]},"a":2}`,
		`[0,127,128,255,256,65535,65536,4294967295,4294967296,9223372036854775807,18446744073709551615]`,
		`[-0,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649,-9223372036854775808]`,
		`[1.5,1e300,1.0,1E2,-0.0,0.1,2.5e-8,-1.7976931348623157e308,5e-324,1e-400]`,
		`["", "héllo", "\u00e9\ud83d\ude00", "tab\there", "\"quoted\" \\ back", "\u0000\u001f"]`,
		`[` + s40 + `,` + s255 + `,` + s70000 + `]`,
		`[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]`,
		`{"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"j":0,"k":0,"l":0,"m":0,"n":0,"o":0,"p":0}`,
		`{}`, `[]`, `""`, `null`, `true`, `false`, `[[[[{}]]]]`,
	}
	for _, doc := range docs {
		cmd := exec.Command(python3, "-c", "import json,msgpack,sys; "+
			"sys.stdout.buffer.write(msgpack.packb(json.loads(sys.stdin.read()), use_bin_type=False))")
		cmd.Stdin = strings.NewReader(doc)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		want, err := cmd.Output()
		if err != nil {
			t.Fatalf("python on %.50s: %v: %s", doc, err, stderr.Bytes())
		}
		got, err := msgjson.FromJSON(nil, []byte(doc))
		if err != nil {
			t.Errorf("FromJSON(%.50s): %v", doc, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("FromJSON(%.50s)\n got % x\nwant % x (python)", doc, got, want)
		}
	}
}

func BenchmarkFromJSON(b *testing.B) {
	doc := []byte(`{"name":"sensor-7","seq":123456,"values":[1.5,-2,3e10,null,true],"tags":{"a":"x","b":"héllo"}}`)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := msgjson.FromJSON(buf, doc); err != nil {
			b.Fatal(err)
		}
	}
}
