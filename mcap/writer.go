package mcap

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"unicode/utf8"
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
// After an I/O error from the underlying writer, every method returns that
// error: the file is then only recoverable with a Reader.
type Writer struct {
	out    *bufio.Writer
	offset int64  // bytes written so far: the file offset of the next record
	crc    uint32 // running CRC32 of the data section, then of the summary
	opts   WriterOptions
	comp   compressor
	err    error // sticky error; ErrClosed after Close
	buf    []byte

	schemas  []Schema  // index ID-1
	channels []Channel // index ID-1

	// The open chunk. A schema or channel is in the chunk when its mark equals
	// chunkSeq; bumping chunkSeq forgets them all without clearing anything.
	chunk       []byte
	chunkSeq    uint32
	schemaMark  []uint32
	channelMark []uint32
	chunkStart  uint64
	chunkEnd    uint64
	chunkMsgs   int
	chunkData   uint64         // message data bytes in the open chunk
	index       [][]indexEntry // Message Index entries of the open chunk, by channel ID-1
	indexed     []uint16       // channels with entries in the open chunk

	// Summary material.
	msgCount      uint64
	startTime     uint64
	endTime       uint64
	channelCounts []uint64 // by channel ID-1
	chunkIndexes  []chunkIndex
	metaIndexes   []metadataIndex

	// What Written reports. Each complete record that holds messages (a
	// Chunk, or a Message when unchunked) leaves a mark; once every byte
	// up to the mark's end has left the buffer for the underlying writer,
	// its totals are out.
	emitted writtenMark   // totals of all complete records emitted so far
	marks   []writtenMark // emitted, not yet known to be out, by end
	sent    writtenMark   // totals known to be out
}

// writtenMark is the end offset of a record holding messages and the
// message and data byte totals up to and including it.
type writtenMark struct {
	end      int64
	messages uint64
	data     uint64
}

type indexEntry struct {
	logTime uint64
	offset  uint64 // within the uncompressed chunk records
}

type chunkIndex struct {
	start, end         uint64
	offset, length     uint64
	indexOffsets       []channelOffset
	indexLength        uint64
	compression        string
	compressed, uncomp uint64
}

type channelOffset struct {
	channel uint16
	offset  uint64
}

type metadataIndex struct {
	offset, length uint64
	name           string
}

// NewWriter writes the magic and the Header record to w and returns a Writer
// for the rest of the file. Output is buffered: call Flush to push complete
// records to w, and Close to finish the file. Closing the Writer does not
// close w.
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
		out:       bufio.NewWriterSize(w, 64<<10),
		opts:      opts,
		comp:      comp,
		chunkSeq:  1,
		startTime: math.MaxUint64,
	}
	wr.resetChunkTimes()
	b := append(wr.buf[:0], Magic...)
	b, start := beginRecord(b, opHeader)
	b = appendString(b, "") // profile: none of the well-known ones fits mcl's msgpack
	b = appendString(b, Library)
	b = endRecord(b, start)
	wr.buf = b
	return wr, wr.emit(b)
}

// emit writes file bytes and keeps the offset and running CRC in step.
func (w *Writer) emit(b []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.out.Write(b)
	w.offset += int64(n)
	w.crc = crc32.Update(w.crc, crcTable, b[:n])
	if err != nil {
		w.err = err
	}
	w.settle()
	return err
}

// complete notes that a record holding n messages, with data bytes of
// message data, has just been emitted in full.
func (w *Writer) complete(n int, data uint64) {
	w.emitted.end = w.offset
	w.emitted.messages += uint64(n)
	w.emitted.data += data
	w.marks = append(w.marks, w.emitted)
	w.settle()
}

// settle moves the marks whose records have left the buffer to w.sent. The
// buffer holds the last bytes emitted, so everything before
// w.offset-Buffered() is with the underlying writer, even after a failed
// write: bufio keeps exactly what it could not pass on.
func (w *Writer) settle() {
	if len(w.marks) == 0 {
		return
	}
	sent := w.offset - int64(w.out.Buffered())
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
	for k, v := range m {
		if err := validString(what+" key", k); err != nil {
			return err
		}
		if err := validString(what+" value", v); err != nil {
			return err
		}
	}
	if uint64(stringMapLen(m)) > math.MaxUint32 {
		return fmt.Errorf("mcap: %s too large", what)
	}
	return nil
}

// AddSchema registers a schema and returns its ID (1, 2, ...). name is the
// schema's identifier, encoding the schema language (e.g. "jsonschema"; ""
// with empty data when there is none). Channels refer to the ID; schemaless
// channels, like mcl's msgpack topics, use 0 and need no schema at all.
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
	w.schemas = append(w.schemas, Schema{
		ID: uint16(len(w.schemas) + 1), Name: name, Encoding: encoding, Data: slices.Clone(data),
	})
	w.schemaMark = append(w.schemaMark, 0)
	s := &w.schemas[len(w.schemas)-1]
	if w.opts.Chunked {
		w.chunkSchema(s.ID)
		return s.ID, nil
	}
	w.buf = appendSchema(w.buf[:0], s)
	return s.ID, w.emit(w.buf)
}

// AddChannel registers a channel on topic and returns its ID (1, 2, ...).
// schemaID is 0 for schemaless messages or an ID from AddSchema;
// messageEncoding names the payload format ("msgpack", "json", ...); metadata
// may be nil. The record is written at once (into the open chunk when
// chunked), so a recovered file lists the channel even if it got no messages.
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
	md := make(map[string]string, len(metadata))
	for k, v := range metadata {
		md[k] = v
	}
	w.channels = append(w.channels, Channel{
		ID: uint16(len(w.channels) + 1), SchemaID: schemaID, Topic: topic,
		MessageEncoding: messageEncoding, Metadata: md,
	})
	w.channelMark = append(w.channelMark, 0)
	w.channelCounts = append(w.channelCounts, 0)
	w.index = append(w.index, nil)
	c := &w.channels[len(w.channels)-1]
	if w.opts.Chunked {
		w.chunkChannel(c.ID)
		return c.ID, nil
	}
	w.buf = appendChannel(w.buf[:0], c)
	return c.ID, w.emit(w.buf)
}

// chunkSchema and chunkChannel put a definition into the open chunk unless
// it is already there. Repeating definitions in every chunk that uses them
// makes each chunk self-describing: a reader recovering a damaged file, or
// one that starts at any chunk, can decode its messages.
func (w *Writer) chunkSchema(id uint16) {
	if id == 0 || w.schemaMark[id-1] == w.chunkSeq {
		return
	}
	w.schemaMark[id-1] = w.chunkSeq
	w.chunk = appendSchema(w.chunk, &w.schemas[id-1])
}

func (w *Writer) chunkChannel(id uint16) {
	if w.channelMark[id-1] == w.chunkSeq {
		return
	}
	c := &w.channels[id-1]
	w.chunkSchema(c.SchemaID) // the spec wants a schema before channels that use it
	w.channelMark[id-1] = w.chunkSeq
	w.chunk = appendChannel(w.chunk, c)
}

// WriteMessage appends a message on a channel returned by AddChannel. Data is
// copied, so the caller may reuse it at once. When chunked, a chunk that
// reaches ChunkSize is compressed and written.
func (w *Writer) WriteMessage(m Message) error {
	if err := w.err; err != nil {
		return err
	}
	if m.Channel == 0 || int(m.Channel) > len(w.channels) {
		return fmt.Errorf("%w: %d", ErrUnknownChannel, m.Channel)
	}
	w.msgCount++
	w.startTime = min(w.startTime, m.LogTime)
	w.endTime = max(w.endTime, m.LogTime)
	w.channelCounts[m.Channel-1]++

	if !w.opts.Chunked {
		w.buf = appendMessageHeader(w.buf[:0], &m)
		if err := w.emit(w.buf); err != nil {
			return err
		}
		if err := w.emit(m.Data); err != nil {
			return err
		}
		w.complete(1, uint64(len(m.Data)))
		return nil
	}

	w.chunkChannel(m.Channel)
	if !w.opts.SkipMessageIndex {
		idx := &w.index[m.Channel-1]
		if len(*idx) == 0 {
			w.indexed = append(w.indexed, m.Channel)
		}
		*idx = append(*idx, indexEntry{m.LogTime, uint64(len(w.chunk))})
	}
	w.chunk = appendMessageHeader(w.chunk, &m)
	w.chunk = append(w.chunk, m.Data...)
	w.chunkMsgs++
	w.chunkData += uint64(len(m.Data))
	w.chunkStart = min(w.chunkStart, m.LogTime)
	w.chunkEnd = max(w.chunkEnd, m.LogTime)
	if len(w.chunk) >= w.opts.ChunkSize {
		return w.finishChunk()
	}
	return nil
}

// AddMetadata writes a Metadata record. Metadata records may not live inside
// chunks, so this one goes straight to the data section, ahead of the open
// chunk.
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
	b, start := beginRecord(w.buf[:0], opMetadata)
	b = appendString(b, name)
	b = appendStringMap(b, m)
	w.buf = endRecord(b, start)
	w.metaIndexes = append(w.metaIndexes, metadataIndex{uint64(w.offset), uint64(len(w.buf)), name})
	return w.emit(w.buf)
}

// Flush ends the open chunk and hands everything written so far to the
// underlying writer as complete records. This is the unit of crash safety: a
// Reader recovering the file after the process dies gets every message written
// before the last Flush. Flush does not sync; for durability across power
// loss, call Sync on the *os.File after Flush.
func (w *Writer) Flush() error {
	if err := w.err; err != nil {
		return err
	}
	if err := w.finishChunk(); err != nil {
		return err
	}
	if err := w.out.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *Writer) resetChunkTimes() {
	w.chunkStart, w.chunkEnd = math.MaxUint64, 0
}

// finishChunk writes the open chunk, if any, followed by its Message Index
// records, and remembers where they went for the Chunk Index.
func (w *Writer) finishChunk() error {
	if len(w.chunk) == 0 {
		return nil
	}
	records := w.chunk
	uncompCRC := crc32.Checksum(records, crcTable)
	if w.comp != nil {
		var err error
		if records, err = w.comp.compress(records); err != nil {
			w.err = fmt.Errorf("mcap: compressing chunk: %w", err)
			return w.err
		}
	}
	start, end := w.chunkStart, w.chunkEnd
	if w.chunkMsgs == 0 {
		start, end = 0, 0 // the spec's value for a chunk without messages
	}

	ci := chunkIndex{
		start: start, end: end, offset: uint64(w.offset),
		compression: w.opts.Compression,
		compressed:  uint64(len(records)), uncomp: uint64(len(w.chunk)),
	}
	b := append(w.buf[:0], opChunk)
	b = appendU64(b, uint64(chunkFixedLen+4+len(w.opts.Compression)+8+len(records)))
	b = appendU64(b, start)
	b = appendU64(b, end)
	b = appendU64(b, uint64(len(w.chunk)))
	b = appendU32(b, uncompCRC)
	b = appendString(b, w.opts.Compression)
	b = appendU64(b, uint64(len(records)))
	w.buf = b
	if err := w.emit(b); err != nil {
		return err
	}
	if err := w.emit(records); err != nil {
		return err
	}
	// The chunk is complete: a Reader gets its messages back even if the
	// Message Index records after it are cut off.
	w.complete(w.chunkMsgs, w.chunkData)
	ci.length = uint64(w.offset) - ci.offset

	// Message indexes in channel order, each sorted by log time as readers
	// binary-search them; entries are usually in order already.
	slices.Sort(w.indexed)
	indexStart := w.offset
	b = w.buf[:0]
	for _, ch := range w.indexed {
		entries := w.index[ch-1]
		if !slices.IsSortedFunc(entries, cmpEntry) {
			slices.SortStableFunc(entries, cmpEntry)
		}
		ci.indexOffsets = append(ci.indexOffsets, channelOffset{ch, uint64(indexStart) + uint64(len(b))})
		b = append(b, opMessageIndex)
		b = appendU64(b, uint64(2+4+16*len(entries)))
		b = appendU16(b, ch)
		b = appendU32(b, uint32(16*len(entries)))
		for _, e := range entries {
			b = appendU64(b, e.logTime)
			b = appendU64(b, e.offset)
		}
		w.index[ch-1] = entries[:0]
	}
	w.buf = b
	if err := w.emit(b); err != nil {
		return err
	}
	ci.indexLength = uint64(len(b))
	w.chunkIndexes = append(w.chunkIndexes, ci)

	w.indexed = w.indexed[:0]
	w.chunk = w.chunk[:0]
	w.chunkSeq++
	w.chunkMsgs, w.chunkData = 0, 0
	w.resetChunkTimes()
	return nil
}

func cmpEntry(a, b indexEntry) int { return cmp.Compare(a.logTime, b.logTime) }

// Close ends the open chunk and writes the Data End record, the summary
// section (unless SkipSummary), the Footer and the closing magic, then flushes.
// It does not close the underlying writer. Calling Close again returns
// ErrClosed.
func (w *Writer) Close() error {
	if err := w.err; err != nil {
		return err
	}
	if err := w.finishChunk(); err != nil {
		return err
	}
	b, start := beginRecord(w.buf[:0], opDataEnd)
	b = appendU32(b, w.crc) // the running CRC now covers exactly the bytes before Data End
	b = endRecord(b, start)
	if err := w.emit(b); err != nil {
		return err
	}

	var summaryStart, offsetStart uint64
	w.crc = 0 // from here on, the running CRC is the summary CRC
	if !w.opts.SkipSummary {
		summaryStart = uint64(w.offset)
		b = w.appendSummary(w.buf[:0])
		offsetStart = summaryStart + uint64(len(b))
		b = w.appendSummaryOffsets(b, summaryStart)
		if err := w.emit(b); err != nil {
			return err
		}
	}
	b = append(b[:0], opFooter)
	b = appendU64(b, footerLen)
	b = appendU64(b, summaryStart)
	b = appendU64(b, offsetStart)
	var summaryCRC uint32
	if !w.opts.SkipSummary {
		// The CRC runs from the summary start through the footer's
		// summary_offset_start field.
		summaryCRC = crc32.Update(w.crc, crcTable, b)
	}
	b = appendU32(b, summaryCRC)
	b = append(b, Magic...)
	if err := w.emit(b); err != nil {
		return err
	}
	if err := w.out.Flush(); err != nil {
		w.err = err
		return err
	}
	if c, ok := w.comp.(*zstdCompressor); ok {
		_ = c.enc.Close() // EncodeAll-only encoders hold no goroutines; this just frees state
	}
	w.err = ErrClosed
	return nil
}

// appendSummary appends the summary records grouped by opcode: schemas, then
// channels (which the spec requires before Statistics), Statistics, Chunk
// Indexes, Metadata Indexes.
func (w *Writer) appendSummary(b []byte) []byte {
	for i := range w.schemas {
		b = appendSchema(b, &w.schemas[i])
	}
	for i := range w.channels {
		b = appendChannel(b, &w.channels[i])
	}
	b, start := beginRecord(b, opStatistics)
	b = appendU64(b, w.msgCount)
	b = appendU16(b, uint16(len(w.schemas)))
	b = appendU32(b, uint32(len(w.channels)))
	b = appendU32(b, 0) // attachments: this Writer writes none
	b = appendU32(b, uint32(len(w.metaIndexes)))
	b = appendU32(b, uint32(len(w.chunkIndexes)))
	if w.msgCount == 0 {
		b = appendU64(b, 0)
		b = appendU64(b, 0)
	} else {
		b = appendU64(b, w.startTime)
		b = appendU64(b, w.endTime)
	}
	// Every channel is listed, even with a count of 0: an empty map would
	// mean "not available".
	b = appendU32(b, uint32(10*len(w.channels)))
	for i, n := range w.channelCounts {
		b = appendU16(b, uint16(i+1))
		b = appendU64(b, n)
	}
	b = endRecord(b, start)
	for i := range w.chunkIndexes {
		ci := &w.chunkIndexes[i]
		b, start = beginRecord(b, opChunkIndex)
		b = appendU64(b, ci.start)
		b = appendU64(b, ci.end)
		b = appendU64(b, ci.offset)
		b = appendU64(b, ci.length)
		b = appendU32(b, uint32(10*len(ci.indexOffsets)))
		for _, o := range ci.indexOffsets {
			b = appendU16(b, o.channel)
			b = appendU64(b, o.offset)
		}
		b = appendU64(b, ci.indexLength)
		b = appendString(b, ci.compression)
		b = appendU64(b, ci.compressed)
		b = appendU64(b, ci.uncomp)
		b = endRecord(b, start)
	}
	for _, mi := range w.metaIndexes {
		b, start = beginRecord(b, opMetadataIndex)
		b = appendU64(b, mi.offset)
		b = appendU64(b, mi.length)
		b = appendString(b, mi.name)
		b = endRecord(b, start)
	}
	return b
}

// appendSummaryOffsets appends one Summary Offset record per opcode group in
// the summary, found by walking the records just built.
func (w *Writer) appendSummaryOffsets(b []byte, summaryStart uint64) []byte {
	end := len(b)
	for i := 0; i < end; {
		op := b[i]
		j := i
		for j < end && b[j] == op {
			j += recordHeaderLen + int(uint64At(b, j+1))
		}
		b = append(b, opSummaryOffset)
		b = appendU64(b, 1+8+8)
		b = append(b, op)
		b = appendU64(b, summaryStart+uint64(i))
		b = appendU64(b, uint64(j-i))
		i = j
	}
	return b
}

func uint64At(b []byte, i int) uint64 { return binary.LittleEndian.Uint64(b[i:]) }
