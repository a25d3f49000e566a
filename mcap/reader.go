package mcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"maps"

	fmcap "github.com/foxglove/mcap/go/mcap"
)

// Reader reads an MCAP file through an io.ReaderAt. It uses the summary
// section when the file has one and falls back to scanning the data section
// when it has none, as after a crash: every method works on both kinds of
// file. A Reader is safe for concurrent use.
//
// Records are read and decoded by the MCAP library's Lexer and parsers
// (github.com/foxglove/mcap/go/mcap). What this Reader adds is what the
// library's own Reader lacks: it reads a file whose end is missing, as a
// crash leaves it, up to the cut; it checks the chunk, data section and
// summary CRCs; it bounds every allocation by the file size and a 1 GiB
// cap; and it reports damage as a *FormatError naming its offset.
type Reader struct {
	r         io.ReaderAt
	size      int64
	header    fmcap.Header
	dataStart int64    // offset of the first record after the Header
	prefixCRC uint32   // CRC32 of the bytes before dataStart, to seed the data section CRC
	summary   *summary // nil when the file has no summary section
	maxAlloc  int64    // largest record or decompressed chunk held in memory

	// headerCut is the damage of a file that ends inside its magic or
	// Header record, as a writer killed before its first write leaves it
	// (even 0 bytes): such a file reads as an empty file whose end is
	// missing, and headerCut is the *FormatError every scan reports.
	headerCut error
}

// summary holds what the summary section says, parsed once by NewReader.
type summary struct {
	schemas  map[uint16]*Schema
	channels map[uint16]*Channel
	stats    *fmcap.Statistics
	chunks   map[int64]*fmcap.ChunkIndex // by chunk offset
	metadata []*fmcap.MetadataIndex
}

// lexer reads a run of records, of the file or of a chunk, with the
// library's Lexer, and knows where each record starts.
type lexer struct {
	lex  *fmcap.Lexer
	r    countingReader
	base int64 // offset of the run
	next int64 // offset of the record after the last one read
}

// newLexer returns a lexer over the records in r, which start at offset
// base. No record longer than limit is allocated.
func newLexer(r io.Reader, base, limit int64) *lexer {
	l := &lexer{r: countingReader{r: r}, base: base, next: base}
	// SkipMagic: the run starts with a record. EmitChunks: chunks come
	// whole, to be skipped, or decompressed with the allocation checked
	// first. A MaxRecordSize of 0 would mean no limit.
	l.lex, _ = fmcap.NewLexer(&l.r, &fmcap.LexerOptions{ // with SkipMagic it cannot fail
		SkipMagic: true, EmitChunks: true, MaxRecordSize: int(max(limit, 1)),
	})
	return l
}

// read returns the next record's token, content (in p if it fits, else
// new) and offset. The Lexer skips attachments and records it does not
// know. At the end of the run it returns io.EOF.
func (l *lexer) read(p []byte) (fmcap.TokenType, []byte, int64, error) {
	tok, rec, err := l.lex.Next(p)
	if err != nil {
		return tok, nil, l.next, err
	}
	l.next = l.base + l.r.n
	return tok, rec, l.next - recordHeaderLen - int64(len(rec)), nil
}

// countingReader counts the bytes read from r and keeps its first error
// other than EOF, to tell I/O errors from damage.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// crcWriter computes the CRC32 of what is written to it. Unlike a
// hash.Hash32, it can resume from a saved value.
type crcWriter struct{ sum uint32 }

func (c *crcWriter) Write(p []byte) (int, error) {
	c.sum = crc32.Update(c.sum, crc32.IEEETable, p)
	return len(p), nil
}

// NewReader checks the magic and Header at the start of the file and loads
// the summary section if the file ends with a Footer that points to one. A
// file without Footer (its writer never closed it) is not an error here:
// reading it yields everything up to the damage and then a *FormatError.
// That includes a file cut inside the magic or the Header, even an empty
// one: it reads as a file without messages whose damage is ErrTruncated.
// NewReader fails on a file that is not MCAP (ErrBadMagic) or whose Header
// is malformed, and when a Footer is present but the summary it points to
// is damaged; Recover still salvages such a file.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	rd, err := openReader(r, size)
	if err != nil {
		return nil, err
	}
	if rd.headerCut != nil {
		return rd, nil
	}
	if err := rd.loadSummary(); err != nil {
		return nil, err
	}
	return rd, nil
}

func openReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < 0 {
		return nil, fmt.Errorf("mcap: negative file size %d", size)
	}
	rd := &Reader{r: r, size: size, maxAlloc: defaultMaxAlloc}
	var magic [len(Magic)]byte
	n := min(size, int64(len(magic)))
	if err := rd.readAt(magic[:n], 0); err != nil {
		return nil, err
	}
	if string(magic[:n]) != Magic[:n] {
		return nil, formatErr(ErrBadMagic, 0, "file does not start with the MCAP magic (found %q)", magic[:n])
	}
	if n < int64(len(Magic)) {
		return rd.cutInHeader(), nil
	}
	crc := &crcWriter{sum: crc32.ChecksumIEEE(magic[:])}
	l := rd.fileLexer(n, crc)
	tok, body, off, err := l.read(nil)
	if err != nil {
		if err = rd.fileDamage(l, err); errors.Is(err, ErrTruncated) {
			return rd.cutInHeader(), nil
		}
		return nil, err
	}
	if tok != fmcap.TokenHeader || off != n {
		return nil, formatErr(ErrMalformed, n, "first record is not a Header")
	}
	h, err := parse(fmcap.ParseHeader, body)
	if err != nil {
		return nil, formatErr(ErrMalformed, n, "Header record does not decode: %v", err)
	}
	rd.header, rd.dataStart, rd.prefixCRC = *h, l.next, crc.sum
	return rd, nil
}

// cutInHeader makes r the Reader of a file that ends before its Header
// record does. Such a file starts as an MCAP file should, as far as it goes,
// so it is a file whose writer stopped at once, not garbage: it is read like
// any other file cut short, as one with nothing before the cut.
func (r *Reader) cutInHeader() *Reader {
	switch {
	case r.size == 0:
		r.headerCut = formatErr(ErrTruncated, 0, "file is empty: its writer stopped before writing the MCAP magic and Header (killed as it started?)")
	case r.size < int64(len(Magic)):
		r.headerCut = formatErr(ErrTruncated, 0, "file ends after %d bytes, inside the MCAP magic (writer killed as it started?)", r.size)
	default:
		r.headerCut = formatErr(ErrTruncated, int64(len(Magic)), "file ends inside the Header record (writer killed as it started?)")
	}
	r.dataStart = r.size
	return r
}

// readAt fills p from offset off. A short read means the file is shorter than
// the size the caller claimed, which is a truncation like any other.
func (r *Reader) readAt(p []byte, off int64) error {
	n, err := r.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		return formatErr(ErrTruncated, off+int64(n), "file ends early (size given as %d)", r.size)
	}
	return fmt.Errorf("mcap: reading %d bytes at offset %d: %w", len(p), off, err)
}

// fileLexer returns a lexer over the file's records from offset off on,
// which passes every byte it reads through crc.
func (r *Reader) fileLexer(off int64, crc io.Writer) *lexer {
	rest := io.NewSectionReader(r.r, off, r.size-off)
	return newLexer(io.TeeReader(rest, crc), off, min(r.maxAlloc, r.size-off))
}

// fileDamage turns the error err of l, a lexer over the file, into a
// *FormatError for the record at l.next, where the Lexer stopped (or for a
// record before it that the Lexer skipped). I/O errors are returned as they
// are.
func (r *Reader) fileDamage(l *lexer, err error) error {
	off := l.next
	if l.r.err != nil {
		return fmt.Errorf("mcap: reading at offset %d: %w", off, l.r.err)
	}
	if err == io.EOF {
		return formatErr(ErrTruncated, off, "file ends without a Data End record (writer not closed?)")
	}
	if r.size-off < recordHeaderLen {
		return formatErr(ErrTruncated, off, "file ends inside a record header")
	}
	var hdr [recordHeaderLen]byte
	if err := r.readAt(hdr[:], off); err != nil {
		return err
	}
	n, left := binary.LittleEndian.Uint64(hdr[1:]), uint64(r.size-off-recordHeaderLen)
	switch {
	case n > left:
		return formatErr(ErrTruncated, off,
			"record of %d bytes runs past the end of the file (%d bytes left): cut short or corrupt length", n, left)
	case errors.Is(err, fmcap.ErrRecordTooLarge):
		return formatErr(ErrTooLarge, off, "record exceeds the %d byte limit", r.maxAlloc)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return formatErr(ErrTruncated, off, "record runs past the end of the file: %v", err)
	}
	return formatErr(ErrMalformed, off, "%v", err)
}

// loadSummary reads the Footer and the summary section. Anything short of a
// well-formed Footer followed by the magic counts as "no footer": that is
// what a crash leaves, and such files are read by scanning instead.
func (r *Reader) loadSummary() error {
	footerOff := r.size - tailLen
	if footerOff < r.dataStart {
		return nil
	}
	var tail [tailLen]byte
	if err := r.readAt(tail[:], footerOff); err != nil {
		return err
	}
	if string(tail[recordHeaderLen+footerLen:]) != Magic || tail[0] != byte(fmcap.OpFooter) ||
		binary.LittleEndian.Uint64(tail[1:]) != footerLen {
		return nil
	}
	f, err := fmcap.ParseFooter(tail[recordHeaderLen:])
	if err != nil || f.SummaryStart == 0 {
		return nil
	}
	if f.SummaryStart < uint64(r.dataStart) || f.SummaryStart > uint64(footerOff) {
		return formatErr(ErrMalformed, footerOff, "Footer summary_start %d is outside the file's summary area", f.SummaryStart)
	}
	if f.SummaryOffsetStart != 0 && (f.SummaryOffsetStart < f.SummaryStart || f.SummaryOffsetStart > uint64(footerOff)) {
		return formatErr(ErrMalformed, footerOff, "Footer summary_offset_start %d is outside the summary", f.SummaryOffsetStart)
	}
	sumOff := int64(f.SummaryStart)
	if footerOff-sumOff > r.maxAlloc {
		return formatErr(ErrTooLarge, sumOff, "summary of %d bytes exceeds the %d byte limit", footerOff-sumOff, r.maxAlloc)
	}
	buf := make([]byte, footerOff-sumOff)
	if err := r.readAt(buf, sumOff); err != nil {
		return err
	}
	if f.SummaryCRC != 0 {
		// The summary CRC covers the summary and summary offset sections
		// and the Footer up to (not including) the CRC field itself.
		got := crc32.Update(crc32.ChecksumIEEE(buf), crc32.IEEETable, tail[:recordHeaderLen+16])
		if got != f.SummaryCRC {
			return formatErr(ErrCRC, sumOff, "summary CRC is %08x, Footer says %08x", got, f.SummaryCRC)
		}
	}

	s := &summary{
		schemas:  map[uint16]*Schema{},
		channels: map[uint16]*Channel{},
		chunks:   map[int64]*fmcap.ChunkIndex{},
	}
	l := newLexer(bytes.NewReader(buf), sumOff, int64(len(buf)))
	for {
		tok, body, off, err := l.read(nil)
		if err == io.EOF {
			break
		}
		if err != nil {
			return formatErr(ErrMalformed, l.next, "summary record: %v", err)
		}
		switch tok {
		case fmcap.TokenSchema:
			var sc *Schema
			if sc, err = parse(fmcap.ParseSchema, body); err == nil && sc.ID != 0 {
				s.schemas[sc.ID] = sc
			}
		case fmcap.TokenChannel:
			var ch *Channel
			if ch, err = parse(fmcap.ParseChannel, body); err == nil {
				s.channels[ch.ID] = ch
			}
		case fmcap.TokenStatistics:
			s.stats, err = parse(fmcap.ParseStatistics, body)
		case fmcap.TokenChunkIndex:
			var ci *fmcap.ChunkIndex
			if ci, err = parse(fmcap.ParseChunkIndex, body); err == nil {
				s.chunks[int64(ci.ChunkStartOffset)] = ci
			}
		case fmcap.TokenMetadataIndex:
			var mi *fmcap.MetadataIndex
			if mi, err = parse(fmcap.ParseMetadataIndex, body); err == nil {
				s.metadata = append(s.metadata, mi)
			}
		}
		if err != nil {
			return formatErr(ErrMalformed, off, "summary %s record does not decode: %v", tok, err)
		}
	}
	r.summary = s
	return nil
}

// Info summarizes a file.
type Info struct {
	Profile string // from the Header
	Library string // from the Header: the software that wrote the file

	// FromSummary is true when the numbers come from the file's summary
	// section, false when they were counted by scanning the data section
	// (files written without summary, or never closed).
	FromSummary bool

	MessageCount     uint64
	MessageStartTime uint64 // earliest log time; 0 without messages
	MessageEndTime   uint64 // latest log time; 0 without messages
	ChunkCount       uint32
	MetadataCount    uint32
	AttachmentCount  uint32 // from the summary only: a scan skips attachments unread

	Schemas              map[uint16]*Schema
	Channels             map[uint16]*Channel
	ChannelMessageCounts map[uint16]uint64 // by channel ID
}

// TopicMessageCounts sums ChannelMessageCounts by topic.
func (i *Info) TopicMessageCounts() map[string]uint64 {
	m := make(map[string]uint64)
	for id, n := range i.ChannelMessageCounts {
		if ch := i.Channels[id]; ch != nil {
			m[ch.Topic] += n
		}
	}
	return m
}

// Info returns the file's statistics, schemas and channels. It reads them
// from the summary section when there is one; otherwise it scans (and
// decompresses) the whole data section. On a damaged file it returns what it
// counted before the damage together with the *FormatError describing it.
// The returned Schemas and Channels are shared with the Reader: do not modify.
func (r *Reader) Info() (Info, error) {
	info := Info{Profile: r.header.Profile, Library: r.header.Library}
	if s := r.summary; s != nil && s.stats != nil && (len(s.stats.ChannelMessageCounts) > 0 || s.stats.MessageCount == 0) {
		st := s.stats
		info.FromSummary = true
		info.MessageCount = st.MessageCount
		info.MessageStartTime, info.MessageEndTime = st.MessageStartTime, st.MessageEndTime
		info.ChunkCount, info.MetadataCount, info.AttachmentCount = st.ChunkCount, st.MetadataCount, st.AttachmentCount
		info.Schemas = maps.Clone(s.schemas)
		info.Channels = maps.Clone(s.channels)
		info.ChannelMessageCounts = maps.Clone(st.ChannelMessageCounts)
		return info, nil
	}

	info.ChannelMessageCounts = map[uint16]uint64{}
	sc := r.newScan()
	sc.onChunk = func() { info.ChunkCount++ }
	sc.onMetadata = func(Metadata) error { info.MetadataCount++; return nil }
	sc.onMessage = func(mv MessageView) error {
		t := mv.Message.LogTime
		if info.MessageCount == 0 || t < info.MessageStartTime {
			info.MessageStartTime = t
		}
		info.MessageEndTime = max(info.MessageEndTime, t)
		info.MessageCount++
		info.ChannelMessageCounts[mv.Channel.ID]++
		return nil
	}
	err := r.scan(sc)
	info.Schemas, info.Channels = sc.schemas, sc.channels
	return info, err
}

// ReadOptions selects messages for Reader.Messages. The zero value selects
// all of them.
type ReadOptions struct {
	Topics []string // only these topics; empty means all
	Start  uint64   // only log times >= Start
	End    uint64   // only log times < End; 0 means no upper bound
}

// MessageView is one message as read from a file, with its channel and
// schema. Channel and Schema are shared between messages: do not modify
// them. Message.Data is not reused by the Reader and may be retained.
type MessageView struct {
	Channel *Channel
	Schema  *Schema // nil for schemaless channels
	Message Message
	// Offset is the file offset of the record holding the message: its
	// Chunk record, or the Message record itself in an unchunked file.
	Offset int64
}

// Messages iterates over the messages matching opts in file order, which for
// files written by Writer is the order of the WriteMessage calls (log-time
// order if they were made in log-time order). It stops at the end of the data
// section; if it meets damage first, such as the cut end of a file whose
// writer was killed, it yields every intact message before the damage and
// then one final (MessageView{}, err) with a *FormatError.
//
// With a summary, chunks whose time range or channels cannot match opts are
// not decompressed (but still read, so the data section CRC is checked).
func (r *Reader) Messages(opts ReadOptions) iter.Seq2[MessageView, error] {
	return func(yield func(MessageView, error) bool) {
		var topics map[string]bool
		if len(opts.Topics) > 0 {
			topics = make(map[string]bool, len(opts.Topics))
			for _, t := range opts.Topics {
				topics[t] = true
			}
		}
		inTime := func(t uint64) bool { return t >= opts.Start && (opts.End == 0 || t < opts.End) }
		sc := r.newScan()
		if s := r.summary; s != nil {
			// Skipping a chunk also skips the definitions inside it, which is
			// only safe when the summary already supplies them all.
			sc.wantChunk = func(off int64, start, end uint64) bool {
				if end < opts.Start || (opts.End != 0 && start >= opts.End) {
					return false
				}
				ci := s.chunks[off]
				if topics == nil || ci == nil || len(ci.MessageIndexOffsets) == 0 {
					return true // no index says which channels the chunk holds
				}
				for id := range ci.MessageIndexOffsets {
					if ch := s.channels[id]; ch == nil || topics[ch.Topic] {
						return true
					}
				}
				return false
			}
		}
		sc.onMessage = func(mv MessageView) error {
			if !inTime(mv.Message.LogTime) || (topics != nil && !topics[mv.Channel.Topic]) {
				return nil
			}
			if !yield(mv, nil) {
				return errStop
			}
			return nil
		}
		if err := r.scan(sc); err != nil && err != errStop {
			yield(MessageView{}, err)
		}
	}
}

// Metadata returns the file's Metadata records in file order, through the
// summary's Metadata Index when there is one and by scanning the data section
// (without decompressing chunks) otherwise. On a damaged file it returns the
// records before the damage and the *FormatError.
func (r *Reader) Metadata() ([]Metadata, error) {
	var out []Metadata
	if s := r.summary; s != nil && (s.stats == nil || int(s.stats.MetadataCount) == len(s.metadata)) {
		for _, mi := range s.metadata {
			off := int64(mi.Offset)
			if mi.Offset > uint64(r.size) || mi.Length > uint64(r.size-off) {
				return out, formatErr(ErrMalformed, off, "Metadata Index points outside the file")
			}
			if mi.Length > uint64(r.maxAlloc) {
				return out, formatErr(ErrTooLarge, off, "Metadata record of %d bytes exceeds the %d byte limit", mi.Length, r.maxAlloc)
			}
			l := newLexer(io.NewSectionReader(r.r, off, int64(mi.Length)), off, int64(mi.Length))
			tok, body, _, err := l.read(nil)
			if l.r.err != nil {
				return out, fmt.Errorf("mcap: reading at offset %d: %w", off, l.r.err)
			}
			if err != nil || tok != fmcap.TokenMetadata || l.next != off+int64(mi.Length) {
				return out, formatErr(ErrMalformed, off, "Metadata Index does not point to a Metadata record")
			}
			m, err := parse(fmcap.ParseMetadata, body)
			if err != nil {
				return out, formatErr(ErrMalformed, off, "Metadata record does not decode: %v", err)
			}
			out = append(out, *m)
		}
		return out, nil
	}
	sc := r.newScan()
	sc.wantChunk = func(int64, uint64, uint64) bool { return false }
	sc.onMetadata = func(m Metadata) error { out = append(out, m); return nil }
	err := r.scan(sc)
	return out, err
}

// errStop ends a scan early without error, when a consumer stops iterating.
var errStop = errors.New("mcap: stop")

// scanner holds the state of one pass over the data section and the
// callbacks that consume it; nil callbacks are skipped.
type scanner struct {
	schemas  map[uint16]*Schema
	channels map[uint16]*Channel

	wantChunk  func(off int64, start, end uint64) bool // false: do not decompress
	onSchema   func(*Schema) error                     // new definitions only
	onChannel  func(*Channel) error                    // new definitions only
	onMessage  func(MessageView) error
	onMetadata func(Metadata) error
	onChunk    func()

	inflated []byte // reused for decompressed chunks, whose records are copied out
}

func (r *Reader) newScan() *scanner {
	sc := &scanner{schemas: map[uint16]*Schema{}, channels: map[uint16]*Channel{}}
	if s := r.summary; s != nil {
		maps.Copy(sc.schemas, s.schemas)
		maps.Copy(sc.channels, s.channels)
	}
	return sc
}

// scan walks the data section record by record, from the Header to the Data
// End record, whose CRC it checks against everything read on the way. It
// needs no summary or Footer, so it reads a file whose end is missing.
func (r *Reader) scan(sc *scanner) error {
	if r.headerCut != nil {
		return r.headerCut
	}
	crc := &crcWriter{sum: r.prefixCRC}
	l := r.fileLexer(r.dataStart, crc)
	for {
		prev, sum := l.next, crc.sum // the CRC of the file up to prev
		tok, body, off, err := l.read(nil)
		if err != nil {
			return r.fileDamage(l, err)
		}
		switch tok {
		case fmcap.TokenDataEnd:
			return r.dataEnd(body, off, prev, sum)
		case fmcap.TokenFooter:
			return nil // a file without Data End: lenient, the Footer ends the data too
		case fmcap.TokenChunk:
			err = r.chunk(sc, body, off)
		case fmcap.TokenMetadata:
			if sc.onMetadata != nil {
				var m *Metadata
				if m, err = parse(fmcap.ParseMetadata, body); err != nil {
					return formatErr(ErrMalformed, off, "Metadata record does not decode: %v", err)
				}
				err = sc.onMetadata(*m)
			}
		default:
			err = sc.inner(tok, body, off, -1)
		}
		if err != nil {
			return err
		}
	}
}

// dataEnd checks the Data End record at off against the CRC of the data
// section, given as sum, the CRC up to prev. Records between prev and off,
// which the Lexer skipped (attachments, unknown opcodes), are read again
// to add them.
func (r *Reader) dataEnd(body []byte, off, prev int64, sum uint32) error {
	de, err := parse(fmcap.ParseDataEnd, body)
	if err != nil {
		return formatErr(ErrMalformed, off, "Data End record does not decode: %v", err)
	}
	if de.DataSectionCRC == 0 {
		return nil // not computed
	}
	crc := &crcWriter{sum: sum}
	if off > prev {
		if _, err := io.Copy(crc, io.NewSectionReader(r.r, prev, off-prev)); err != nil {
			return fmt.Errorf("mcap: reading at offset %d: %w", prev, err)
		}
	}
	if crc.sum != de.DataSectionCRC {
		return formatErr(ErrCRC, off, "data section CRC is %08x, Data End says %08x", crc.sum, de.DataSectionCRC)
	}
	return nil
}

// chunk reads the Chunk record at off, whose content is body: it checks the
// sizes, decompresses, checks the CRC, and hands the records inside to sc.
func (r *Reader) chunk(sc *scanner, body []byte, off int64) error {
	c, err := parse(fmcap.ParseChunk, body)
	if err != nil {
		return formatErr(ErrMalformed, off, "Chunk record does not decode: %v", err)
	}
	if sc.onChunk != nil {
		sc.onChunk()
	}
	if sc.wantChunk != nil && !sc.wantChunk(off, c.MessageStartTime, c.MessageEndTime) {
		return nil
	}
	if c.UncompressedSize > uint64(r.maxAlloc) {
		return formatErr(ErrTooLarge, off, "chunk of %d uncompressed bytes exceeds the %d byte limit", c.UncompressedSize, r.maxAlloc)
	}
	data := c.Records
	switch c.Compression {
	case CompressionNone:
		if uint64(len(data)) != c.UncompressedSize {
			return formatErr(ErrMalformed, off, "uncompressed chunk holds %d bytes but declares %d", len(data), c.UncompressedSize)
		}
	case CompressionZstd, CompressionLZ4:
		if data, err = decompress(c.Compression, data, c.UncompressedSize, sc.inflated); err != nil {
			return formatErr(ErrMalformed, off, "decompressing %s chunk: %v", c.Compression, err)
		}
		sc.inflated = data
	default:
		return formatErr(ErrUnsupportedCompression, off, "chunk compression %q", c.Compression)
	}
	if c.UncompressedCRC != 0 {
		if got := crc32.ChecksumIEEE(data); got != c.UncompressedCRC {
			return formatErr(ErrCRC, off, "chunk CRC is %08x, Chunk record says %08x", got, c.UncompressedCRC)
		}
	}
	// The Lexer copies each record out of data; giving it the free part of
	// one buffer the size of data puts them all in a single allocation
	// that messages may keep their Data in.
	buf := make([]byte, len(data))
	used := 0
	l := newLexer(bytes.NewReader(data), 0, int64(len(data)))
	for {
		tok, rec, at, err := l.read(buf[used:used])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return formatErr(ErrMalformed, off, "record at offset %d in the chunk: %v", l.next, err)
		}
		used += len(rec)
		if err := sc.inner(tok, rec, off, at); err != nil {
			return err
		}
	}
}

// inner handles the records that may appear both in the data section and
// inside chunks. off is the offset of the record, or of the chunk holding it,
// which errors and MessageView report; inChunk is the record's offset inside
// the chunk's records, or -1.
func (sc *scanner) inner(tok fmcap.TokenType, body []byte, off, inChunk int64) error {
	where := func() string {
		if inChunk < 0 {
			return ""
		}
		return fmt.Sprintf(" (at offset %d in the chunk)", inChunk)
	}
	switch tok {
	case fmcap.TokenSchema:
		s, err := parse(fmcap.ParseSchema, body)
		if err != nil {
			return formatErr(ErrMalformed, off, "Schema record does not decode%s: %v", where(), err)
		}
		if s.ID == 0 {
			return nil // invalid per the spec, which says to ignore it
		}
		if old := sc.schemas[s.ID]; old != nil {
			if !sameSchema(old, s) {
				return formatErr(ErrMalformed, off, "Schema %d redefined differently%s", s.ID, where())
			}
			return nil
		}
		sc.schemas[s.ID] = s
		if sc.onSchema != nil {
			return sc.onSchema(s)
		}
	case fmcap.TokenChannel:
		c, err := parse(fmcap.ParseChannel, body)
		if err != nil {
			return formatErr(ErrMalformed, off, "Channel record does not decode%s: %v", where(), err)
		}
		if old := sc.channels[c.ID]; old != nil {
			if !sameChannel(old, c) {
				return formatErr(ErrMalformed, off, "Channel %d redefined differently%s", c.ID, where())
			}
			return nil
		}
		sc.channels[c.ID] = c
		if sc.onChannel != nil {
			return sc.onChannel(c)
		}
	case fmcap.TokenMessage:
		if sc.onMessage == nil {
			return nil
		}
		var m fmcap.Message
		if err := m.PopulateFrom(body, false); err != nil {
			return formatErr(ErrMalformed, off, "Message record too short%s", where())
		}
		ch := sc.channels[m.ChannelID]
		if ch == nil {
			return formatErr(ErrMalformed, off, "Message on undefined channel %d%s", m.ChannelID, where())
		}
		return sc.onMessage(MessageView{
			Channel: ch, Schema: sc.schemas[ch.SchemaID], Offset: off,
			Message: Message{
				Channel: m.ChannelID, Sequence: m.Sequence, LogTime: m.LogTime, PublishTime: m.PublishTime,
				Data: m.Data[:len(m.Data):len(m.Data)], // so that an append by the caller cannot clobber the next record
			},
		})
	}
	return nil // Message Index, unknown and private records: nothing to do
}
