package mcap

import (
	"bytes"
	"errors"
	"testing"
)

// smallDisk keeps what fits in room bytes and then fails like a full disk,
// after a short write, as write(2) does.
type smallDisk struct {
	buf  bytes.Buffer
	room int
}

func (d *smallDisk) Write(p []byte) (int, error) {
	n := min(len(p), d.room)
	d.buf.Write(p[:n])
	d.room -= n
	if n < len(p) {
		return n, errFail
	}
	return n, nil
}

// TestWrittenIsReadable checks that Writer.Written counts exactly the
// messages (and data bytes) a Reader gets back from what the underlying
// writer has received, on disks that fill at all sorts of points: in the
// Header, in a chunk, in a message index, in the summary.
func TestWrittenIsReadable(t *testing.T) {
	for _, m := range modes {
		for _, room := range []int{0, 20, 9000} {
			writeUntilFull(t, m, room, true)
		}
		// Then disks that fill in the summary section and, without
		// compression, which only changes the records' sizes, at 60 points
		// spread over the file; checked at the end.
		full := writeUntilFull(t, m, 1<<30, true)
		writeUntilFull(t, m, full-100, false)
		writeUntilFull(t, m, full-1, false)
		if m.opts.Compression != CompressionNone {
			continue
		}
		for room := 1; room < full; room += full/60 | 1 {
			writeUntilFull(t, m, room, false)
		}
	}
}

// writeUntilFull writes 400 messages of assorted sizes to a disk of room
// bytes, flushing after every 7th, and checks Written against a Reader
// after Close and, with every, after each message too. It returns the size
// of what the disk got.
func writeUntilFull(t *testing.T, m mode, room int, every bool) int {
	t.Helper()
	disk := &smallDisk{room: room}
	w, err := NewWriter(disk, m.opts)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		r, err := NewReader(bytes.NewReader(disk.buf.Bytes()), int64(disk.buf.Len()))
		if err != nil {
			t.Fatalf("%s, room %d, %s: what was written does not open: %v", m.name, room, when, err)
		}
		got, _ := readAll(r, ReadOptions{})
		var data uint64
		for _, mv := range got {
			data += uint64(len(mv.Message.Data))
		}
		if msgs, bytes := w.Written(); msgs != uint64(len(got)) || bytes != data {
			t.Fatalf("%s, room %d, %s: Written says %d messages, %d bytes; the file holds %d, %d bytes",
				m.name, room, when, msgs, bytes, len(got), data)
		}
	}
	const n = 400
	ch, err := w.AddChannel(0, "/x", "msgpack", nil)
	x := uint32(1)
	for i := 0; i < n && err == nil; i++ {
		data := make([]byte, i%50*10)
		for j := range data { // compresses little, so that compressed chunks fill the disk too
			x = x*1664525 + 1013904223
			data[j] = byte(x >> 24)
		}
		err = w.WriteMessage(Message{Channel: ch, LogTime: uint64(i), Data: data})
		if err == nil && i%7 == 6 {
			err = w.Flush()
		}
		if every {
			check("after a message")
		}
	}
	cerr := w.Close()
	check("after Close")
	if room < 1<<30 {
		if !errors.Is(err, errFail) && !errors.Is(cerr, errFail) {
			t.Fatalf("%s, room %d: no write failure: %v, %v", m.name, room, err, cerr)
		}
	} else if msgs, _ := w.Written(); err != nil || cerr != nil || msgs != n {
		t.Fatalf("%s: Written %d messages of %d (%v, %v)", m.name, msgs, n, err, cerr)
	}
	return disk.buf.Len()
}
