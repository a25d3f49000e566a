package msgjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/tinylib/msgp/msgp"
)

func FuzzToJSON(f *testing.F) {
	for _, s := range []string{
		everything, "c0", "93 01 a1 78 c0", "81 92 01 02 01", "a3 ff fe 41", "d6 ff 00 00 00 01",
		"cb 7f f8 00 00 00 00 00 00", "ca 3d cc cc cd", "dd ff ff ff ff 01", "01 02", "c1",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, rest, err := msgjson.ToJSON([]byte("keep"), msg)
		if err != nil {
			if string(out) != "keep" || !bytes.Equal(rest, msg) {
				t.Fatalf("on error %v returned %q, % x; want dst and msg", err, out, rest)
			}
			if errors.Is(err, msgjson.ErrTooDeep) {
				return
			}
			// An independent decoder must also reject it.
			if _, err := msgp.Skip(msg); err == nil {
				t.Fatalf("ToJSON: %v, but msgp.Skip accepts it", err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("keep")) || !json.Valid(out[4:]) {
			t.Fatalf("ToJSON(% x) = %q, not valid JSON after dst", msg, out)
		}
		// At worst, a few bytes of ext or bin render as a few dozen.
		if n := len(msg) - len(rest); len(out)-4 > 16*n {
			t.Fatalf("ToJSON rendered %d bytes as %d", n, len(out)-4)
		}
		if want, err := msgp.Skip(msg); err != nil || len(rest) != len(want) {
			t.Fatalf("ToJSON(% x) left %d bytes, msgp.Skip left %d (error %v)", msg, len(rest), len(want), err)
		}
	})
}

func FuzzFromJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,null,"x"]}`, `[1.5,-0.0,1e300,18446744073709551615,-9223372036854775808]`,
		`"h\u00e9llo\ud800"`, `{"z":{"y":[[],{}]},"z":2}`, `1 2`, `[1,`, `18446744073709551616`,
		"\"\xff\"", `1e400`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		packed, err := msgjson.FromJSON(nil, data)
		if valid := json.Valid(data); err != nil {
			if valid && !errors.Is(err, msgjson.ErrRange) {
				t.Fatalf("FromJSON(%q) of valid JSON: %v", data, err)
			}
			return
		} else if !valid {
			t.Fatalf("FromJSON(%q) accepts invalid JSON", data)
		}

		// Byte for byte what packing encoding/json's tokens gives.
		if want, err := msgjson.PackTokens(data); err != nil || !bytes.Equal(packed, want) {
			t.Fatalf("FromJSON(%q) = % x; through the Decoder: % x, %v", data, packed, want, err)
		}
		out, rest, err := msgjson.ToJSON(nil, packed)
		if err != nil || len(rest) != 0 || !json.Valid(out) {
			t.Fatalf("ToJSON(FromJSON(%q)) = %q, % x, %v", data, out, rest, err)
		}
		// The same value, bar the int/float distinction and key order.
		var want, got any
		if json.Unmarshal(data, &want) != nil || json.Unmarshal(out, &got) != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ToJSON(FromJSON(%q)) = %s, a different value", data, out)
		}
	})
}
