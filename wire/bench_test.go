package wire_test

import (
	"testing"

	"github.com/mcl-go/mcl/wire"
)

func BenchmarkDecode(b *testing.B) {
	d := wire.AppendMessage(nil, "sensors/lidar/front", payloadOfLen(1000, 1))
	b.ReportAllocs()
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		if _, err := wire.Decode(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	payload := payloadOfLen(1000, 1)
	dst := make([]byte, 0, wire.MaxDatagram)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		dst = wire.AppendMessage(dst[:0], "sensors/lidar/front", payload)
	}
}

func BenchmarkReassemble1MB(b *testing.B) {
	payload := payloadOfLen(1<<20, 1)
	frames := fragments(b, "sensors/camera", payload)
	r := wire.NewReassembler(wire.Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var got []byte
		for _, f := range frames {
			got, _ = r.Add(sender1, f, t0)
		}
		if len(got) != len(payload) {
			b.Fatalf("reassembled %d bytes, want %d", len(got), len(payload))
		}
	}
}
