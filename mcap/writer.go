package mcap

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"slices"
	"unicode/utf8"

	fmcap "github.com/foxglove/mcap/go/mcap"
)

// DefaultChunkSize is the uncompressed size at which a Writer closes a chunk
// when WriterOptions.ChunkSize is zero: large enough for good compression,
// small enough that a crash loses at most about this much unflushed data.
const DefaultChunkSize = 1 << 20

// Library is the value written to the library field of every Header.
const Library = "mcl"

// WriterOptions configures NewWriter. The zero value writes an unchunked,
// uncompressed file with a full summary section.
type WriterOptions struct {
	// Chunked groups schemas, channels and messages into Chunk records, each
	// followed by Message Index records, so readers can seek by time and topic.
	Chunked bool

	// ChunkSize is the uncompressed size in bytes at which a chunk is
	// closed and written; 0 means DefaultChunkSize. Only used when Chunked.
	ChunkSize int

	// Compression of chunks: CompressionNone, CompressionZstd or
	// CompressionLZ4. Requires Chunked.
	Compression string

	// SkipMessageIndex omits the Message Index records after each chunk (and
	// so the index offsets in the Chunk Index records). Readers then have to
	// decompress whole chunks to find messages.
	SkipMessageIndex bool

	// SkipSummary omits the summary section (Schema, Channel, Statistics,
	// Chunk Index and Metadata Index copies, plus Summary Offset records), so
	// Close writes only Data End, an empty Footer and the magic.
	SkipSummary bool
}

// Writer writes one MCAP file. Create it with NewWriter, register schemas and
// channels, write messages, and finish with Close. A Writer is not safe for
// concurrent use.
//
// The MCAP library's Writer (github.com/foxglove/mcap/go/mcap) encodes the
// records and writes the CRCs, the summary section and the Footer. This one
// adds what a recorder that may be killed at any moment needs: chunks that
// Flush closes and writes at once (the library's close only when full),
// each repeating the definitions its messages use, and Written.
//
// After an I/O error from the underlying writer, every method returns that
// error: the file is then only recoverable with a Reader.
type Writer struct {
	fw   *fmcap.Writer  // writes the file
	cw   countingWriter // what out accepted from fw, for Written
	out  *bufio.Writer
	opts WriterOptions
	comp compressor
	err  error // sticky error; ErrClosed after Close

	schemas    []*Schema  // index ID-1
	channels   []*Channel // index ID-1
	counts     []uint64   // messages by channel ID-1
	start, end uint64     // log time range of all messages

	// The open chunk, whose records a second library Writer, cfw, encodes
	// into chunk. A schema or channel is in the chunk when its mark equals
	// chunkSeq; bumping chunkSeq forgets them all without clearing anything.
	cfw         *fmcap.Writer
	chunk       bytes.Buffer
	chunkSeq    uint32
	schemaMark  []uint32
	channelMark []uint32
	chunkStart  uint64
	chunkEnd    uint64
	chunkMsgs   int
	chunkData   uint64                // message data bytes in the open chunk
	index       []*fmcap.MessageIndex // Message Index of the open chunk, by channel ID-1
	indexed     []uint16              // channels with entries in the open chunk

	// What Written reports. Each record that holds messages (a Chunk, or a
	// Message when unchunked) leaves a mark; once every byte up to the
	// mark's end has left the buffer for the underlying writer, its totals
	// are out.
	emitted writtenMark   // totals of all records written so far
	marks   []writtenMark // written, not yet known to be out, by end
	sent    writtenMark   // totals known to be out
}

// writtenMark is the end offset of a record holding messages and the
// message and data byte totals up to and including it.
type writtenMark struct {
	end      int64
	messages uint64
	data     uint64
}

// countingWriter counts the bytes that w accepts.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewWriter writes the magic and the Header record to w and returns a Writer
// for the rest of the file. Output is buffered: call Flush to push complete
// records to w, and Close to finish the file. Closing the Writer does not
// close w. It fails on options it cannot honour: compression without
// chunking, or a compression other than the three it knows
// (ErrUnsupportedCompression).
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	if opts.Compression != CompressionNone && !opts.Chunked {
		return nil, fmt.Errorf("mcap: compression %q requires WriterOptions.Chunked", opts.Compression)
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	comp, err := newCompressor(opts.Compression)
	if err != nil {
		return nil, err
	}
	wr := &Writer{
		out:        bufio.NewWriterSize(w, 64<<10),
		opts:       opts,
		comp:       comp,
		chunkSeq:   1,
		start:      math.MaxUint64,
		chunkStart: math.MaxUint64,
	}
	wr.cw.w = wr.out
	// The Header names mcl alone: OverrideLibrary keeps the library from
	// adding its own name.
	fo := &fmcap.WriterOptions{IncludeCRC: true, OverrideLibrary: true}
	if opts.SkipSummary {
		fo.SkipStatistics, fo.SkipRepeatedSchemas, fo.SkipRepeatedChannelInfos = true, true, true
		fo.SkipChunkIndex, fo.SkipAttachmentIndex, fo.SkipMetadataIndex, fo.SkipSummaryOffsets = true, true, true, true
	}
	// fw writes to the buffer, which takes the magic and Header whole: w
	// cannot fail them here.
	if wr.fw, err = fmcap.NewWriter(&wr.cw, fo); err != nil {
		return nil, err
	}
	if opts.Chunked {
		if wr.cfw, err = fmcap.NewWriter(&wr.chunk, &fmcap.WriterOptions{SkipMagic: true}); err != nil {
			return nil, err
		}
	}
	// Profile "": none of the well-known ones fits mcl's msgpack.
	if err := wr.check(wr.fw.WriteHeader(&fmcap.Header{Library: Library})); err != nil {
		return nil, err
	}
	return wr, nil
}

// check makes err, if any, sticky, and moves what has left the buffer to
// what Written reports. It returns err.
func (w *Writer) check(err error) error {
	if err != nil && w.err == nil {
		w.err = err
	}
	w.settle()
	return err
}

// mark notes that a record holding n messages, with data bytes of message
// data, is being written and ends at file offset end.
func (w *Writer) mark(end uint64, n int, data uint64) {
	w.emitted = writtenMark{int64(end), w.emitted.messages + uint64(n), w.emitted.data + data}
	w.marks = append(w.marks, w.emitted)
}

// settle moves the marks whose records have left the buffer to w.sent. The
// buffer holds the last bytes it accepted, so everything before
// w.cw.n-Buffered() is with the underlying writer, even after a failed
// write: bufio keeps exactly what it could not pass on.
func (w *Writer) settle() {
	sent := w.cw.n - int64(w.out.Buffered())
	i := 0
	for i < len(w.marks) && w.marks[i].end <= sent {
		i++
	}
	if i > 0 {
		w.sent = w.marks[i-1]
		w.marks = append(w.marks[:0], w.marks[i:]...)
	}
}

// Written returns how many messages, and how many bytes of message data,
// are in complete records that the underlying writer has accepted: what a
// Reader gets back from the bytes written so far if nothing more follows.
// Messages still in the open chunk or the output buffer are not counted
// until Flush or Close hands them over. After a write error (a full disk)
// it counts what got out before the failure, which is all the file will
// ever hold.
func (w *Writer) Written() (messages, dataBytes uint64) {
	w.settle()
	return w.sent.messages, w.sent.data
}

func validString(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("mcap: %s %q is not valid UTF-8", what, s)
	}
	return nil
}

func validMap(what string, m map[string]string) error {
	n := 0
	for k, v := range m {
		if err := validString(what+" key", k); err != nil {
			return err
		}
		if err := validString(what+" value", v); err != nil {
			return err
		}
		n += 8 + len(k) + len(v)
	}
	if uint64(n) > math.MaxUint32 {
		return fmt.Errorf("mcap: %s too large", what)
	}
	return nil
}

// AddSchema registers a schema and returns its ID (1, 2, ...). name is the
// schema's identifier, encoding the schema language (e.g. "jsonschema"; ""
// with empty data when there is none). Channels refer to the ID; schemaless
// channels, like mcl's msgpack topics, use 0 and need no schema at all. It
// fails on strings that are not UTF-8, data over 4 GiB, the 65536th schema
// (ErrTooMany), after a write error and after Close (ErrClosed).
func (w *Writer) AddSchema(name, encoding string, data []byte) (uint16, error) {
	if err := w.err; err != nil {
		return 0, err
	}
	if len(w.schemas) == maxID {
		return 0, ErrTooMany
	}
	if err := validString("schema name", name); err != nil {
		return 0, err
	}
	if err := validString("schema encoding", encoding); err != nil {
		return 0, err
	}
	if uint64(len(data)) > math.MaxUint32 {
		return 0, fmt.Errorf("mcap: schema data of %d bytes exceeds 4 GiB", len(data))
	}
	s := &Schema{ID: uint16(len(w.schemas) + 1), Name: name, Encoding: encoding, Data: slices.Clone(data)}
	w.schemas = append(w.schemas, s)
	if !w.opts.Chunked {
		return s.ID, w.check(w.fw.WriteSchema(s))
	}
	w.fw.AddSchema(s) // for the summary; the records go into chunks
	w.schemaMark = append(w.schemaMark, 0)
	return s.ID, w.chunkSchema(s.ID)
}

// AddChannel registers a channel on topic and returns its ID (1, 2, ...).
// schemaID is 0 for schemaless messages or an ID from AddSchema;
// messageEncoding names the payload format ("msgpack", "json", ...); metadata
// may be nil. The record is written at once (into the open chunk when
// chunked), so a recovered file lists the channel even if it got no
// messages. It fails on a schema ID that AddSchema did not return
// (ErrUnknownSchema), strings that are not UTF-8, the 65536th channel
// (ErrTooMany), after a write error and after Close (ErrClosed).
func (w *Writer) AddChannel(schemaID uint16, topic, messageEncoding string, metadata map[string]string) (uint16, error) {
	if err := w.err; err != nil {
		return 0, err
	}
	if schemaID != 0 && int(schemaID) > len(w.schemas) {
		return 0, fmt.Errorf("%w: %d", ErrUnknownSchema, schemaID)
	}
	if len(w.channels) == maxID {
		return 0, ErrTooMany
	}
	if err := validString("topic", topic); err != nil {
		return 0, err
	}
	if err := validString("message encoding", messageEncoding); err != nil {
		return 0, err
	}
	if err := validMap("channel metadata", metadata); err != nil {
		return 0, err
	}
	c := &Channel{
		ID: uint16(len(w.channels) + 1), SchemaID: schemaID, Topic: topic,
		MessageEncoding: messageEncoding, Metadata: maps.Clone(metadata),
	}
	w.channels = append(w.channels, c)
	w.counts = append(w.counts, 0)
	if !w.opts.Chunked {
		return c.ID, w.check(w.fw.WriteChannel(c))
	}
	w.fw.AddChannel(c) // for the summary; the records go into chunks
	w.channelMark = append(w.channelMark, 0)
	w.index = append(w.index, &fmcap.MessageIndex{ChannelID: c.ID})
	return c.ID, w.chunkChannel(c.ID)
}

// chunkSchema and chunkChannel put a definition into the open chunk unless
// it is already there. Repeating definitions in every chunk that uses them
// makes each chunk self-describing: a reader recovering a damaged file, or
// one that starts at any chunk, can decode its messages.
func (w *Writer) chunkSchema(id uint16) error {
	if id == 0 || w.schemaMark[id-1] == w.chunkSeq {
		return nil
	}
	w.schemaMark[id-1] = w.chunkSeq
	return w.check(w.cfw.WriteSchema(w.schemas[id-1]))
}

func (w *Writer) chunkChannel(id uint16) error {
	if w.channelMark[id-1] == w.chunkSeq {
		return nil
	}
	c := w.channels[id-1]
	// The spec wants a schema before the channels that use it.
	if err := w.chunkSchema(c.SchemaID); err != nil {
		return err
	}
	w.channelMark[id-1] = w.chunkSeq
	return w.check(w.cfw.WriteChannel(c))
}

// WriteMessage appends a message on a channel returned by AddChannel. Data is
// copied, so the caller may reuse it at once. When chunked, a chunk that
// reaches ChunkSize is compressed and written. It fails on an unknown
// channel (ErrUnknownChannel), after a write error and after Close
// (ErrClosed).
func (w *Writer) WriteMessage(m Message) error {
	if err := w.err; err != nil {
		return err
	}
	if m.Channel == 0 || int(m.Channel) > len(w.channels) {
		return fmt.Errorf("%w: %d", ErrUnknownChannel, m.Channel)
	}
	w.counts[m.Channel-1]++
	w.start = min(w.start, m.LogTime)
	w.end = max(w.end, m.LogTime)
	fm := fmcap.Message{
		ChannelID: m.Channel, Sequence: m.Sequence, LogTime: m.LogTime, PublishTime: m.PublishTime, Data: m.Data,
	}
	size := uint64(len(m.Data))
	if !w.opts.Chunked {
		w.mark(w.fw.Offset()+recordHeaderLen+messageFixedLen+size, 1, size)
		return w.check(w.fw.WriteMessage(&fm))
	}

	if err := w.chunkChannel(m.Channel); err != nil {
		return err
	}
	if !w.opts.SkipMessageIndex {
		idx := w.index[m.Channel-1]
		if idx.IsEmpty() {
			w.indexed = append(w.indexed, m.Channel)
		}
		idx.Add(m.LogTime, uint64(w.chunk.Len()))
	}
	if err := w.cfw.WriteMessage(&fm); err != nil {
		return w.check(err)
	}
	w.chunkMsgs++
	w.chunkData += size
	w.chunkStart = min(w.chunkStart, m.LogTime)
	w.chunkEnd = max(w.chunkEnd, m.LogTime)
	if w.chunk.Len() >= w.opts.ChunkSize {
		return w.finishChunk()
	}
	return nil
}

// AddMetadata writes a Metadata record. Metadata records may not live inside
// chunks, so this one goes straight to the data section, ahead of the open
// chunk. It fails on strings that are not UTF-8, after a write error and
// after Close (ErrClosed).
func (w *Writer) AddMetadata(name string, m map[string]string) error {
	if err := w.err; err != nil {
		return err
	}
	if err := validString("metadata name", name); err != nil {
		return err
	}
	if err := validMap("metadata", m); err != nil {
		return err
	}
	return w.check(w.fw.WriteMetadata(&Metadata{Name: name, Metadata: m}))
}

// Flush ends the open chunk and hands everything written so far to the
// underlying writer as complete records. This is the unit of crash safety: a
// Reader recovering the file after the process dies gets every message
// written before the last Flush, so a recorder calls it on a timer. Flush
// does not sync; for durability across power loss, call Sync on the
// *os.File after Flush. It returns the underlying writer's error (sticky),
// or ErrClosed after Close.
func (w *Writer) Flush() error {
	if err := w.err; err != nil {
		return err
	}
	if err := w.finishChunk(); err != nil {
		return err
	}
	return w.check(w.out.Flush())
}

// finishChunk compresses the open chunk, if any, and has the library write
// it followed by its Message Index records.
func (w *Writer) finishChunk() error {
	if w.chunk.Len() == 0 {
		return nil
	}
	c := &fmcap.Chunk{
		MessageStartTime: w.chunkStart,
		MessageEndTime:   w.chunkEnd,
		UncompressedSize: uint64(w.chunk.Len()),
		UncompressedCRC:  crc32.ChecksumIEEE(w.chunk.Bytes()),
		Compression:      w.opts.Compression,
		Records:          w.chunk.Bytes(),
	}
	if w.chunkMsgs == 0 {
		c.MessageStartTime, c.MessageEndTime = 0, 0 // the spec's value for a chunk without messages
	}
	if w.comp != nil {
		var err error
		if c.Records, err = w.comp.compress(c.Records); err != nil {
			return w.check(fmt.Errorf("mcap: compressing chunk: %w", err))
		}
	}

	// Message indexes in channel order, each sorted by log time as readers
	// binary-search them; entries are usually in order already.
	slices.Sort(w.indexed)
	indexes := make([]*fmcap.MessageIndex, len(w.indexed))
	for i, ch := range w.indexed {
		indexes[i] = w.index[ch-1]
		if e := indexes[i].Entries(); !slices.IsSortedFunc(e, cmpEntry) {
			slices.SortStableFunc(e, cmpEntry)
		}
	}

	// Once the Chunk record is out, a Reader gets its messages back even if
	// the Message Index records after it are cut off.
	w.mark(w.fw.Offset()+recordHeaderLen+chunkFixedLen+4+uint64(len(c.Compression))+8+uint64(len(c.Records)),
		w.chunkMsgs, w.chunkData)
	err := w.fw.WriteChunkWithIndexes(c, indexes)

	for _, idx := range indexes {
		idx.Reset()
	}
	w.indexed = w.indexed[:0]
	w.chunk.Reset()
	w.chunkSeq++
	w.chunkMsgs, w.chunkData = 0, 0
	w.chunkStart, w.chunkEnd = math.MaxUint64, 0
	return w.check(err)
}

func cmpEntry(a, b fmcap.MessageIndexEntry) int { return cmp.Compare(a.Timestamp, b.Timestamp) }

// Close ends the open chunk and has the library write the Data End record,
// the summary section (unless SkipSummary), the Footer and the closing
// magic, then flushes. It does not close the underlying writer. It returns
// the underlying writer's error (sticky), or ErrClosed when called again.
func (w *Writer) Close() error {
	if err := w.err; err != nil {
		return err
	}
	if err := w.finishChunk(); err != nil {
		return err
	}
	// The library's Statistics count only the messages it writes itself,
	// not those in chunks, list only channels that got some (one missing
	// would mean "count not available"), and take a chunk without messages
	// as starting at time 0. These are the messages' own.
	st := w.fw.Statistics
	st.MessageCount, st.MessageStartTime, st.MessageEndTime = 0, 0, 0
	for i, n := range w.counts {
		st.ChannelMessageCounts[uint16(i+1)] = n
		st.MessageCount += n
	}
	if st.MessageCount > 0 {
		st.MessageStartTime, st.MessageEndTime = w.start, w.end
	}
	if err := w.check(w.fw.Close()); err != nil {
		return err
	}
	if err := w.check(w.out.Flush()); err != nil {
		return err
	}
	if c, ok := w.comp.(*zstdCompressor); ok {
		_ = c.enc.Close() // EncodeAll-only encoders hold no goroutines; this just frees state
	}
	w.err = ErrClosed
	return nil
}
