package mcap

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to every reading entry point. They must
// not panic, must not allocate beyond the (lowered) cap, and must report
// damage as a *FormatError.
func FuzzReader(f *testing.F) {
	for _, m := range modes {
		wr, _ := flushedSample(f, m.opts, 20, 3)
		f.Add(wr.file)
		f.Add(wr.file[:len(wr.file)/2])
		opts := m.opts
		opts.SkipSummary = true
		wr, _ = flushedSample(f, opts, 5, 2)
		f.Add(wr.file)
	}
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(err error) {
			var fe *FormatError
			if err != nil && !errors.As(err, &fe) && !errors.Is(err, ErrTooMany) {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
		}
		r, err := openReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			check(err)
			return
		}
		// Decompressed chunks may not exceed 1 MiB here, so a tiny input
		// claiming a huge chunk cannot make the fuzzer allocate much.
		r.maxAlloc = 1 << 20
		check(r.loadSummary())
		_, err = r.Info()
		check(err)
		_, err = r.Metadata()
		check(err)
		n := 0
		for mv, err := range r.Messages(ReadOptions{}) {
			if err != nil {
				check(err)
				break
			}
			if mv.Channel == nil {
				t.Fatal("message without channel")
			}
			n++
		}
		for _, err := range r.Messages(ReadOptions{Topics: []string{"/a"}, Start: 3, End: 10}) {
			if err != nil {
				check(err)
			}
		}
		res, err := Recover(io.Discard, bytes.NewReader(data), int64(len(data)), WriterOptions{Chunked: true, Compression: CompressionLZ4})
		if err == nil && r.summary == nil && res.Messages < uint64(n) {
			t.Fatalf("Recover salvaged %d messages, Messages yielded %d", res.Messages, n)
		}
	})
}
