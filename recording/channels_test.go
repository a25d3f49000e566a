package recording

import (
	"fmt"
	"testing"
	"time"
)

// TestChannelsRunOut: MCAP numbers channels and schemas with 16 bits, so
// a stream of ever new topics fills a file. A recording into one file
// refuses, and counts, the messages of channels that do not fit, and
// keeps recording the others; one into a directory starts a new file.
// Neither stops on it.
func TestChannelsRunOut(t *testing.T) {
	const fits = 1<<16 - 1 // IDs 1..65535
	for _, tc := range []struct {
		name, encoding string
		dir            bool
	}{
		{"one file", "msgpack", false},
		{"one file, json", "json", false},
		{"directory", "msgpack", true},
		{"directory, json", "json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir()
			if !tc.dir {
				path += "/one.mcap"
			}
			rec, err := Create(path, Options{Compression: "none", Encoding: tc.encoding})
			if err != nil {
				t.Fatal(err)
			}
			p := mclMessage(1, 1.5)
			for i := range fits + 10 {
				if err := rec.Write(group, msg(fmt.Sprintf("t/%d", i), p, t0.Add(time.Duration(i)))); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			// An old channel still records once the file is full.
			if err := rec.Write(group, msg("t/0", p, t0.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			st := rec.Stats()
			want := Stats{Received: fits + 11, Messages: fits + 1, Refused: 10, Files: 1}
			if tc.dir {
				want.Messages, want.Refused, want.Files = fits+11, 0, 2
			}
			if st.Received != want.Received || st.Messages != want.Messages || st.Refused != want.Refused || st.Files != want.Files || st.Lost != 0 {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			read := 0
			for _, f := range rec.Files() {
				for _, err := range Read(f, Filter{}) {
					if err != nil {
						t.Fatal(err)
					}
					read++
				}
			}
			if uint64(read) != want.Messages {
				t.Errorf("read %d messages back, want %d", read, want.Messages)
			}
		})
	}
}
