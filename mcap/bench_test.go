package mcap

import (
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkWriteMessage measures recording throughput: 256-byte msgpack-like
// payloads on 8 channels into 1 MiB chunks.
func BenchmarkWriteMessage(b *testing.B) {
	for _, m := range []mode{modes[1], modes[3], modes[2]} {
		b.Run(m.name, func(b *testing.B) {
			opts := m.opts
			opts.ChunkSize = DefaultChunkSize
			w, err := NewWriter(io.Discard, opts)
			if err != nil {
				b.Fatal(err)
			}
			for i := range 8 {
				if _, err := w.AddChannel(0, "/topic/"+string(rune('a'+i)), "msgpack", nil); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(3, 4))
			data := make([]byte, 256)
			for i := range data {
				data[i] = byte(rng.IntN(16))
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				msg := Message{Channel: uint16(1 + i%8), Sequence: uint32(i), LogTime: uint64(i), PublishTime: uint64(i), Data: data}
				if err := w.WriteMessage(msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkReadMessages measures replay: iterating every message of a file.
func BenchmarkReadMessages(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			opts := m.opts
			if opts.Chunked {
				opts.ChunkSize = DefaultChunkSize
			}
			wr := writeSample(b, opts, 20000)
			r := open(b, wr.file)
			b.SetBytes(int64(len(wr.file)))
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				for _, err := range r.Messages(ReadOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != 20000 {
					b.Fatal(n)
				}
			}
		})
	}
}
