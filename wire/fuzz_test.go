package wire

import (
	"bytes"
	"errors"
	"testing"
)

func fuzzSeeds() [][]byte {
	return [][]byte{
		{0x92, 0xa1, 0x61, 0xa2, 0x68, 0x69},
		{0x92, 0xc0, 0xa2, 0x68, 0x69},
		{0x92, 0xc4, 0x01, 0x61, 0x82, 0xa1, 0x78, 0x93, 0x01, 0x02, 0x03, 0xa1, 0x79, 0xc0},
		{0x94, 0xa1, 0x74, 0xcc, 0xc8, 0xcd, 0x01, 0x2c, 0xa1, 0x7a},
		{0x94, 0xa1, 0x74, 0x01, 0xce, 0x80, 0x00, 0x00, 0x00, 0xc5, 0x00, 0x03, 0x01, 0x02, 0x03},
		{0x94, 0xa1, 0x74, 0xd0, 0x01, 0xd1, 0x00, 0x02, 0xdb, 0x00, 0x00, 0x00, 0x01, 0xff},
		{0xdd, 0xff, 0xff, 0xff, 0xff, 0x00},
		AppendMessage(nil, "topic/with/a/longer/name/over/31", []byte{0xda, 0x00, 0x01, 0x41}),
		AppendFragment(nil, "t", 2, 3, make([]byte, 40)),
	}
}

// FuzzDecode checks that Decode and Topic never panic, that every error
// is a format error, and that a decoded frame re-encodes to a datagram
// that decodes to the same frame.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		topic, terr := Topic(d)
		h, herr := DecodeFragmentHeader(d)
		fr, err := Decode(d)
		if fr.IsFragment() && err == nil {
			// The header decoder agrees, on the datagram and on the prefix
			// that stops where the piece starts.
			hl := len(d) - len(fr.Payload)
			h2, err2 := DecodeFragmentHeader(d[:hl])
			for _, hh := range []FragmentHeader{h, h2} {
				if herr != nil || err2 != nil || hh.Len != hl || hh.Index != fr.Index || hh.Count != fr.Count ||
					hh.PieceLen != len(fr.Payload) || !bytes.Equal(hh.Topic, fr.Topic) {
					t.Fatalf("DecodeFragmentHeader = %+v, %v / %+v, %v; Decode found %+v", h, herr, h2, err2, fr)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v is not ErrMalformed", err)
			}
			return
		}
		if terr != nil || !bytes.Equal(topic, fr.Topic) {
			t.Fatalf("Topic = %q, %v; Decode found %q", topic, terr, fr.Topic)
		}
		var again []byte
		if fr.IsFragment() {
			again = AppendFragment(nil, string(fr.Topic), fr.Index, fr.Count, fr.Payload)
		} else {
			again = AppendMessage(nil, string(fr.Topic), fr.Payload)
		}
		fr2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded frame % x does not decode: %v", again, err)
		}
		if !bytes.Equal(fr.Topic, fr2.Topic) || !bytes.Equal(fr.Payload, fr2.Payload) ||
			fr.Index != fr2.Index || fr.Count != fr2.Count {
			t.Fatalf("round trip changed the frame: %+v -> %+v", fr, fr2)
		}
	})
}
