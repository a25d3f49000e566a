package msgjson_test

import (
	"fmt"

	"github.com/mcl-go/mcl/internal/msgjson"
)

func ExampleFromJSON() {
	msg, err := msgjson.FromJSON(nil, []byte(`{"z": 1, "a": [1.5, "x", null]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", msg)

	_, err = msgjson.FromJSON(nil, []byte(`{"a": 1} 2`))
	fmt.Println(err)
	// Output:
	// 82 a1 7a 01 a1 61 93 cb 3f f8 00 00 00 00 00 00 a1 78 c0
	// line 1, column 10: more than one JSON value
}

func ExampleToJSON() {
	// A map from a Python 2 peer holding a str that is not UTF-8, and an
	// int key, followed by a second value.
	msg := []byte{0x82, 0xa1, 'a', 0xa3, 0xff, 0xfe, 'A', 0x01, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc3}
	for len(msg) > 0 {
		out, rest, err := msgjson.ToJSON(nil, msg)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(out))
		msg = rest
	}
	// Output:
	// {"a":{"$bytes":"//5B"},"1":"NaN"}
	// true
}

func ExampleToFoxgloveJSON() {
	s := msgjson.NewSchema()
	for _, js := range []string{`{"x": 1, "label": "a"}`, `{"x": 1.5}`, `7`} {
		msg, _ := msgjson.FromJSON(nil, []byte(js))
		out, err := msgjson.ToFoxgloveJSON(nil, msg, s)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(out))
	}
	// A bin: base64, described as such.
	out, _ := msgjson.ToFoxgloveJSON(nil, []byte{0x81, 0xa3, 'p', 'n', 'g', 0xc4, 2, 0x89, 'P'}, s)
	fmt.Println(string(out))
	fmt.Println(string(s.AppendJSON(nil, "example")))
	// Output:
	// {"x":1,"label":"a"}
	// {"x":1.5}
	// {"data":7}
	// {"png":"iVA="}
	// {"title":"example","type":"object","properties":{"x":{"type":"number"},"label":{"type":"string"},"data":{"type":"integer"},"png":{"type":"string","contentEncoding":"base64"}}}
}
