package mcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// mode is one way of writing a file; every test that cares runs all of them.
type mode struct {
	name string
	opts WriterOptions
}

var modes = []mode{
	{"unchunked", WriterOptions{}},
	{"chunked", WriterOptions{Chunked: true, ChunkSize: 4 << 10}},
	{"zstd", WriterOptions{Chunked: true, ChunkSize: 4 << 10, Compression: CompressionZstd}},
	{"lz4", WriterOptions{Chunked: true, ChunkSize: 4 << 10, Compression: CompressionLZ4}},
}

// written is what a test wrote, to compare with what a reader returns.
type written struct {
	file     []byte
	schemas  map[uint16]Schema
	channels map[uint16]Channel
	msgs     []Message
	metadata []Metadata
}

func (wr *written) topicCounts() map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range wr.channels {
		m[c.Topic] += 0
	}
	for _, msg := range wr.msgs {
		m[wr.channels[msg.Channel].Topic]++
	}
	return m
}

// poseSchema is the sample's one schema: JSON Schema, in the form Foxglove
// reads, of the JSON messages on /pose.
const poseSchema = `{"type":"object","properties":{"x":{"type":"integer"},"n":{"type":"integer"}}}`

// writeSample writes a file with one schema, five channels (one, /pose, of
// JSON messages with a schema, the others schemaless msgpack with metadata,
// one never used, two on the same topic),
// n messages of varied sizes in nondecreasing log time, and two metadata
// records.
func writeSample(t testing.TB, opts WriterOptions, n int) *written {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	wr := &written{schemas: map[uint16]Schema{}, channels: map[uint16]Channel{}}
	sid, err := w.AddSchema("Pose", "jsonschema", []byte(poseSchema))
	if err != nil {
		t.Fatal(err)
	}
	wr.schemas[sid] = Schema{ID: sid, Name: "Pose", Encoding: "jsonschema", Data: []byte(poseSchema)}
	chans := []Channel{
		{SchemaID: sid, Topic: "/pose", MessageEncoding: "json", Metadata: map[string]string{}},
		{Topic: "/imu", MessageEncoding: "msgpack", Metadata: map[string]string{"group": "239.0.0.1", "rate": "100"}},
		{Topic: "/log", MessageEncoding: "msgpack", Metadata: map[string]string{"qos": "best-effort"}},
		{Topic: "/unused", MessageEncoding: "msgpack", Metadata: map[string]string{}},
		// mcl has one channel per topic and sender, so topics repeat.
		{Topic: "/imu", MessageEncoding: "msgpack", Metadata: map[string]string{"group": "239.0.0.1", "sender": "b"}},
	}
	for _, c := range chans {
		id, err := w.AddChannel(c.SchemaID, c.Topic, c.MessageEncoding, c.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		c.ID = id
		wr.channels[id] = c
	}
	md := Metadata{Name: "recording", Metadata: map[string]string{"host": "robot-1", "mcl": "dev"}}
	if err := w.AddMetadata(md.Name, md.Metadata); err != nil {
		t.Fatal(err)
	}
	wr.metadata = append(wr.metadata, md)

	rng := rand.New(rand.NewPCG(1, 2))
	logTime := uint64(1_700_000_000_000_000_000)
	for i := range n {
		ch := []uint16{1, 2, 3, 5}[rng.IntN(4)]
		data := make([]byte, rng.IntN(200))
		for j := range data {
			data[j] = byte(rng.IntN(4)) // compressible, not trivially so
		}
		if ch == 1 { // JSON valid against poseSchema, as the validator checks
			data = fmt.Appendf(nil, `{"x":%d,"n":%d}`, i, len(data))
		}
		m := Message{Channel: ch, Sequence: uint32(i), LogTime: logTime, PublishTime: logTime - 1000, Data: data}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		wr.msgs = append(wr.msgs, m)
		logTime += uint64(rng.IntN(3)) * 1_000_000 // repeats some times
		if i == n/2 {
			md := Metadata{Name: "midpoint", Metadata: map[string]string{"i": fmt.Sprint(i)}}
			if err := w.AddMetadata(md.Name, md.Metadata); err != nil {
				t.Fatal(err)
			}
			wr.metadata = append(wr.metadata, md)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wr.file = buf.Bytes()
	return wr
}

func open(t testing.TB, file []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readAll collects the messages of r and the error that ended them.
func readAll(r *Reader, opts ReadOptions) ([]MessageView, error) {
	var out []MessageView
	for mv, err := range r.Messages(opts) {
		if err != nil {
			return out, err
		}
		out = append(out, mv)
	}
	return out, nil
}

func sameMessage(a, b Message) bool {
	return a.Channel == b.Channel && a.Sequence == b.Sequence && a.LogTime == b.LogTime &&
		a.PublishTime == b.PublishTime && bytes.Equal(a.Data, b.Data)
}

func checkMessages(t *testing.T, got []MessageView, want []Message, wr *written) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameMessage(got[i].Message, want[i]) {
			t.Fatalf("message %d: got %+v, want %+v", i, got[i].Message, want[i])
		}
		wc := wr.channels[want[i].Channel]
		gc := got[i].Channel
		if gc.ID != wc.ID || gc.Topic != wc.Topic || gc.MessageEncoding != wc.MessageEncoding ||
			!maps.Equal(gc.Metadata, wc.Metadata) || gc.SchemaID != wc.SchemaID {
			t.Fatalf("message %d: channel %+v, want %+v", i, *gc, wc)
		}
		if wc.SchemaID == 0 {
			if got[i].Schema != nil {
				t.Fatalf("message %d: schemaless channel has schema %+v", i, got[i].Schema)
			}
		} else if s := got[i].Schema; s == nil || s.Name != "Pose" || string(s.Data) != poseSchema {
			t.Fatalf("message %d: schema %+v", i, s)
		}
	}
}

func checkInfo(t *testing.T, info Info, wr *written, fromSummary bool) {
	t.Helper()
	if info.FromSummary != fromSummary {
		t.Errorf("FromSummary = %v, want %v", info.FromSummary, fromSummary)
	}
	if info.Library != "mcl" || info.Profile != "" {
		t.Errorf("header: library %q profile %q", info.Library, info.Profile)
	}
	if info.MessageCount != uint64(len(wr.msgs)) {
		t.Errorf("MessageCount = %d, want %d", info.MessageCount, len(wr.msgs))
	}
	if n := len(wr.msgs); n > 0 {
		if info.MessageStartTime != wr.msgs[0].LogTime || info.MessageEndTime != wr.msgs[n-1].LogTime {
			t.Errorf("time range [%d, %d], want [%d, %d]", info.MessageStartTime, info.MessageEndTime,
				wr.msgs[0].LogTime, wr.msgs[n-1].LogTime)
		}
	}
	if info.MetadataCount != uint32(len(wr.metadata)) {
		t.Errorf("MetadataCount = %d, want %d", info.MetadataCount, len(wr.metadata))
	}
	if len(info.Channels) != len(wr.channels) {
		t.Errorf("%d channels, want %d", len(info.Channels), len(wr.channels))
	}
	for id, c := range wr.channels {
		g := info.Channels[id]
		if g == nil || g.Topic != c.Topic || g.MessageEncoding != c.MessageEncoding ||
			g.SchemaID != c.SchemaID || !maps.Equal(g.Metadata, c.Metadata) {
			t.Errorf("channel %d = %+v, want %+v", id, g, c)
		}
	}
	if len(info.Schemas) != len(wr.schemas) {
		t.Errorf("%d schemas, want %d", len(info.Schemas), len(wr.schemas))
	}
	for id, s := range wr.schemas {
		if g := info.Schemas[id]; g == nil || !sameSchema(g, &s) {
			t.Errorf("schema %d = %+v, want %+v", id, g, s)
		}
	}
	got := info.TopicMessageCounts()
	for topic, n := range wr.topicCounts() {
		if got[topic] != n {
			t.Errorf("topic %s: %d messages, want %d", topic, got[topic], n)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 2000)
			r := open(t, wr.file)

			info, err := r.Info()
			if err != nil {
				t.Fatal(err)
			}
			checkInfo(t, info, wr, true)
			if m.opts.Chunked && info.ChunkCount < 10 {
				t.Errorf("ChunkCount = %d, want many chunks", info.ChunkCount)
			}
			if !m.opts.Chunked && info.ChunkCount != 0 {
				t.Errorf("unchunked file has ChunkCount %d", info.ChunkCount)
			}

			got, err := readAll(r, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkMessages(t, got, wr.msgs, wr)

			md, err := r.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if len(md) != len(wr.metadata) {
				t.Fatalf("%d metadata records, want %d", len(md), len(wr.metadata))
			}
			for i := range md {
				if md[i].Name != wr.metadata[i].Name || !maps.Equal(md[i].Metadata, wr.metadata[i].Metadata) {
					t.Errorf("metadata %d = %+v, want %+v", i, md[i], wr.metadata[i])
				}
			}
		})
	}
}

func TestFilter(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 2000)
			r := open(t, wr.file)
			start := wr.msgs[500].LogTime
			end := wr.msgs[1500].LogTime
			cases := []ReadOptions{
				{Topics: []string{"/imu"}},
				{Topics: []string{"/pose", "/log"}},
				{Topics: []string{"/unused"}},
				{Topics: []string{"/nonexistent"}},
				{Start: start},
				{End: end},
				{Start: start, End: end},
				{Topics: []string{"/log"}, Start: start, End: end},
				{Start: end, End: start}, // empty range
			}
			for _, opts := range cases {
				var want []Message
				for _, msg := range wr.msgs {
					topic := wr.channels[msg.Channel].Topic
					if (len(opts.Topics) == 0 || slices.Contains(opts.Topics, topic)) &&
						msg.LogTime >= opts.Start && (opts.End == 0 || msg.LogTime < opts.End) {
						want = append(want, msg)
					}
				}
				got, err := readAll(r, opts)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%+v: %d messages", opts, len(want))
				checkMessages(t, got, want, wr)
			}
		})
	}
}

func TestEarlyBreak(t *testing.T) {
	wr := writeSample(t, modes[2].opts, 500)
	r := open(t, wr.file)
	n := 0
	for _, err := range r.Messages(ReadOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 10 {
			break
		}
	}
	if n != 10 {
		t.Fatalf("iterated %d", n)
	}
}

// Files without summary are read by scanning, with the same results.
func TestNoSummary(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts := m.opts
			opts.SkipSummary = true
			opts.SkipMessageIndex = true
			wr := writeSample(t, opts, 1000)
			r := open(t, wr.file)
			info, err := r.Info()
			if err != nil {
				t.Fatal(err)
			}
			checkInfo(t, info, wr, false)
			got, err := readAll(r, ReadOptions{Topics: []string{"/imu"}, Start: wr.msgs[100].LogTime})
			if err != nil {
				t.Fatal(err)
			}
			var want []Message
			for _, msg := range wr.msgs {
				if wr.channels[msg.Channel].Topic == "/imu" && msg.LogTime >= wr.msgs[100].LogTime {
					want = append(want, msg)
				}
			}
			checkMessages(t, got, want, wr)
			md, err := r.Metadata()
			if err != nil || len(md) != 2 || md[1].Name != "midpoint" {
				t.Fatalf("Metadata() = %+v, %v", md, err)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, m.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := open(t, buf.Bytes())
			info, err := r.Info()
			if err != nil || info.MessageCount != 0 || !info.FromSummary {
				t.Fatalf("Info() = %+v, %v", info, err)
			}
			got, err := readAll(r, ReadOptions{})
			if err != nil || len(got) != 0 {
				t.Fatalf("Messages: %d, %v", len(got), err)
			}
		})
	}
}

func TestWriterErrors(t *testing.T) {
	if _, err := NewWriter(io.Discard, WriterOptions{Chunked: true, Compression: "bz2"}); !errors.Is(err, ErrUnsupportedCompression) {
		t.Errorf("bz2: %v", err)
	}
	if _, err := NewWriter(io.Discard, WriterOptions{Compression: CompressionZstd}); err == nil {
		t.Error("compression without chunking accepted")
	}
	w, err := NewWriter(io.Discard, WriterOptions{Chunked: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddChannel(7, "/x", "msgpack", nil); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("AddChannel with unknown schema: %v", err)
	}
	if _, err := w.AddChannel(0, "bad\xff", "msgpack", nil); err == nil {
		t.Error("invalid UTF-8 topic accepted")
	}
	if err := w.WriteMessage(Message{Channel: 1}); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("WriteMessage on unknown channel: %v", err)
	}
	if err := w.WriteMessage(Message{}); !errors.Is(err, ErrUnknownChannel) {
		t.Errorf("WriteMessage on channel 0: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMessage(Message{Channel: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteMessage after Close: %v", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}

	// Write errors stick.
	fw := &failWriter{after: 100}
	w, err = NewWriter(fw, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := w.AddChannel(0, "/x", "msgpack", nil)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ {
		werr = w.WriteMessage(Message{Channel: ch, Data: make([]byte, 100)})
	}
	if !errors.Is(werr, errFail) {
		t.Fatalf("expected write failure, got %v", werr)
	}
	if err := w.Close(); !errors.Is(err, errFail) {
		t.Errorf("Close after failure: %v", err)
	}
}

var errFail = errors.New("disk full")

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		return 0, errFail
	}
	f.after -= len(p)
	return len(p), nil
}

// The data a message is written from may be reused immediately.
func TestWriteMessageCopies(t *testing.T) {
	for _, m := range modes {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, m.opts)
		ch, _ := w.AddChannel(0, "/x", "msgpack", nil)
		data := []byte("first")
		if err := w.WriteMessage(Message{Channel: ch, Data: data}); err != nil {
			t.Fatal(err)
		}
		copy(data, "XXXXX")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(open(t, buf.Bytes()), ReadOptions{})
		if err != nil || len(got) != 1 || string(got[0].Message.Data) != "first" {
			t.Fatalf("%s: %v %v", m.name, got, err)
		}
	}
}

// Every chunk repeats the definitions its messages use, so each chunk
// decodes on its own.
func TestChunksSelfDescribing(t *testing.T) {
	wr := writeSample(t, modes[1].opts, 1000)
	r := open(t, wr.file)
	off := r.dataStart
	chunks := 0
	for {
		op := wr.file[off]
		n := int64(binary.LittleEndian.Uint64(wr.file[off+1:]))
		if op == opDataEnd {
			break
		}
		if op == opChunk {
			chunks++
			sc := &scanner{schemas: map[uint16]*Schema{}, channels: map[uint16]*Channel{}}
			msgs := 0
			sc.onMessage = func(MessageView) error { msgs++; return nil }
			if err := r.chunk(sc, wr.file[off+9:off+9+n], off); err != nil {
				t.Fatalf("chunk at %d alone: %v", off, err)
			}
			if msgs == 0 && chunks > 1 {
				t.Errorf("chunk at %d has no messages", off)
			}
		}
		off += 9 + n
	}
	if chunks < 10 {
		t.Fatalf("only %d chunks", chunks)
	}
}

// Unknown and private opcodes are skipped, in the data section and in chunks.
func TestUnknownOpcodes(t *testing.T) {
	b := []byte(Magic)
	b, s := beginRecord(b, opHeader)
	b = appendString(b, "")
	b = appendString(b, "hand")
	b = endRecord(b, s)
	b, s = beginRecord(b, 0x80) // private
	b = append(b, "whatever"...)
	b = endRecord(b, s)
	b = appendChannel(b, &Channel{ID: 3, Topic: "/t", MessageEncoding: "json"})
	b, s = beginRecord(b, 0x7E) // future opcode
	b = endRecord(b, s)
	b = appendMessageHeader(b, &Message{Channel: 3, LogTime: 5, Data: []byte("{}")})
	b = append(b, "{}"...)
	// An uncompressed chunk holding an unknown record and a message.
	var inner []byte
	inner, s = beginRecord(inner, 0x99)
	inner = append(inner, 1, 2, 3)
	inner = endRecord(inner, s)
	inner = appendMessageHeader(inner, &Message{Channel: 3, LogTime: 6, Data: []byte("[]")})
	inner = append(inner, "[]"...)
	b, s = beginRecord(b, opChunk)
	b = appendU64(b, 6)
	b = appendU64(b, 6)
	b = appendU64(b, uint64(len(inner)))
	b = appendU32(b, 0) // no CRC
	b = appendString(b, "")
	b = appendU64(b, uint64(len(inner)))
	b = append(b, inner...)
	b = endRecord(b, s)
	b, s = beginRecord(b, opDataEnd)
	b = appendU32(b, 0)
	b = endRecord(b, s)
	b, s = beginRecord(b, opFooter)
	b = appendU64(b, 0)
	b = appendU64(b, 0)
	b = appendU32(b, 0)
	b = endRecord(b, s)
	b = append(b, Magic...)

	r := open(t, b)
	got, err := readAll(r, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0].Message.Data) != "{}" || string(got[1].Message.Data) != "[]" ||
		got[1].Channel.Topic != "/t" {
		t.Fatalf("got %+v", got)
	}
	info, err := r.Info()
	if err != nil || info.Library != "hand" || info.MessageCount != 2 || info.ChunkCount != 1 {
		t.Fatalf("Info() = %+v, %v", info, err)
	}
}

func TestRecoverCompleteFile(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 700)
			var out bytes.Buffer
			res, err := Recover(&out, bytes.NewReader(wr.file), int64(len(wr.file)), modes[2].opts)
			if err != nil || res.Damage != nil || res.Messages != 700 {
				t.Fatalf("Recover = %+v, %v", res, err)
			}
			r := open(t, out.Bytes())
			info, err := r.Info()
			if err != nil {
				t.Fatal(err)
			}
			checkInfo(t, info, wr, true)
			got, err := readAll(r, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkMessages(t, got, wr.msgs, wr)
		})
	}
}

// With a summary, chunks that cannot match the filter are not decompressed:
// damage inside them goes unnoticed by a filtered read (once the data section
// CRC is disabled) but not by a full one.
func TestChunkSkipping(t *testing.T) {
	wr := writeSample(t, modes[2].opts, 2000)
	file := slices.Clone(wr.file)
	r := open(t, file)
	first := firstChunkNoDataCRC(r, file)
	file[recordEnd(file, first)-5] ^= 0xFF // inside the compressed records
	r = open(t, file)
	if _, err := readAll(r, ReadOptions{}); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrCRC) {
		t.Fatalf("full read of a damaged chunk: %v", err)
	}
	late := wr.msgs[1500].LogTime
	got, err := readAll(r, ReadOptions{Start: late})
	if err != nil {
		t.Fatalf("time-filtered read touched the damaged first chunk: %v", err)
	}
	if len(got) == 0 || got[0].Message.LogTime < late {
		t.Fatalf("filtered read returned %d messages", len(got))
	}
}

func TestChunkSkippingByTopic(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, WriterOptions{Chunked: true, Compression: CompressionLZ4})
	busy, _ := w.AddChannel(0, "/busy", "msgpack", nil)
	rare, _ := w.AddChannel(0, "/rare", "msgpack", nil)
	for i := range 10 {
		_ = w.WriteMessage(Message{Channel: busy, LogTime: uint64(i), Data: []byte("busy busy busy")})
	}
	if err := w.Flush(); err != nil { // first chunk: /busy only
		t.Fatal(err)
	}
	_ = w.WriteMessage(Message{Channel: rare, LogTime: 10, Data: []byte("rare")})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	r := open(t, file)
	first := firstChunkNoDataCRC(r, file)
	file[recordEnd(file, first)-10] ^= 0xFF
	got, err := readAll(open(t, file), ReadOptions{Topics: []string{"/rare"}})
	if err != nil || len(got) != 1 || string(got[0].Message.Data) != "rare" {
		t.Fatalf("topic-filtered read: %v, %v", got, err)
	}
	if _, err := readAll(open(t, file), ReadOptions{Topics: []string{"/busy"}}); err == nil {
		t.Fatal("damage in the /busy chunk went unnoticed")
	}
}

// firstChunkNoDataCRC returns the offset of the first Chunk record and
// zeroes the Data End record's CRC (0: not checked), so that a test can
// damage a chunk without the data section CRC reporting it first.
func firstChunkNoDataCRC(r *Reader, file []byte) int64 {
	var first int64
	for off := r.dataStart; ; off = recordEnd(file, off) {
		if file[off] == opChunk && first == 0 {
			first = off
		}
		if file[off] == opDataEnd {
			binary.LittleEndian.PutUint32(file[off+recordHeaderLen:], 0)
			return first
		}
	}
}
