package mcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"maps"
)

// Reader reads an MCAP file through an io.ReaderAt. It uses the summary
// section when the file has one and falls back to scanning the data section
// when it has none, as after a crash: every method works on both kinds of
// file. A Reader is safe for concurrent use.
type Reader struct {
	r         io.ReaderAt
	size      int64
	profile   string
	library   string
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
	stats    *statistics
	// chunkChannels maps a chunk's offset to the channels its message
	// indexes cover; nil means unknown, so the chunk cannot be skipped.
	chunkChannels map[int64][]uint16
	metadata      []metadataIndex
}

type statistics struct {
	messageCount    uint64
	schemaCount     uint16
	channelCount    uint32
	attachmentCount uint32
	metadataCount   uint32
	chunkCount      uint32
	start, end      uint64
	channelCounts   map[uint16]uint64
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
	var prefix [len(Magic) + recordHeaderLen]byte
	n := min(size, int64(len(prefix)))
	if err := rd.readAt(prefix[:n], 0); err != nil {
		return nil, err
	}
	m := min(n, int64(len(Magic)))
	if string(prefix[:m]) != Magic[:m] {
		return nil, formatErr(ErrBadMagic, 0, "file does not start with the MCAP magic (found %q)", prefix[:m])
	}
	if n < int64(len(prefix)) {
		return rd.cutInHeader(), nil
	}
	off := int64(len(Magic))
	if op := prefix[len(Magic)]; op != opHeader {
		return nil, formatErr(ErrMalformed, off, "first record has opcode 0x%02x, want Header (0x01)", op)
	}
	body, err := rd.readBody(off, binary.LittleEndian.Uint64(prefix[len(Magic)+1:]))
	if errors.Is(err, ErrTruncated) {
		return rd.cutInHeader(), nil
	}
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	rd.profile, rd.library = d.str(), d.str()
	if d.bad {
		return nil, formatErr(ErrMalformed, off, "Header record too short")
	}
	rd.dataStart = off + recordHeaderLen + int64(len(body))
	rd.prefixCRC = crc32.Update(crc32.Checksum(prefix[:], crcTable), crcTable, body)
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

// readBody reads the content of the record whose header is at off, after
// checking its declared length against the rest of the file and the
// allocation cap: a corrupt length must never size an allocation.
func (r *Reader) readBody(off int64, n uint64) ([]byte, error) {
	left := r.size - off - recordHeaderLen
	if n > uint64(left) {
		return nil, formatErr(ErrTruncated, off,
			"record of %d bytes runs past the end of the file (%d bytes left): cut short or corrupt length", n, left)
	}
	if n > uint64(r.maxAlloc) {
		return nil, formatErr(ErrTooLarge, off, "record of %d bytes exceeds the %d byte limit", n, r.maxAlloc)
	}
	body := make([]byte, n)
	if err := r.readAt(body, off+recordHeaderLen); err != nil {
		return nil, err
	}
	return body, nil
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
	if string(tail[recordHeaderLen+footerLen:]) != Magic || tail[0] != opFooter ||
		binary.LittleEndian.Uint64(tail[1:]) != footerLen {
		return nil
	}
	d := decoder{b: tail[recordHeaderLen:]}
	start, offsetStart, storedCRC := d.u64(), d.u64(), d.u32()
	if start == 0 {
		return nil
	}
	if start < uint64(r.dataStart) || start > uint64(footerOff) {
		return formatErr(ErrMalformed, footerOff, "Footer summary_start %d is outside the file's summary area", start)
	}
	if offsetStart != 0 && (offsetStart < start || offsetStart > uint64(footerOff)) {
		return formatErr(ErrMalformed, footerOff, "Footer summary_offset_start %d is outside the summary", offsetStart)
	}
	sumOff := int64(start)
	if footerOff-sumOff > r.maxAlloc {
		return formatErr(ErrTooLarge, sumOff, "summary of %d bytes exceeds the %d byte limit", footerOff-sumOff, r.maxAlloc)
	}
	buf := make([]byte, footerOff-sumOff)
	if err := r.readAt(buf, sumOff); err != nil {
		return err
	}
	if storedCRC != 0 {
		// The summary CRC covers the summary and summary offset sections
		// and the Footer up to (not including) the CRC field itself.
		got := crc32.Update(crc32.Checksum(buf, crcTable), crcTable, tail[:recordHeaderLen+16])
		if got != storedCRC {
			return formatErr(ErrCRC, sumOff, "summary CRC is %08x, Footer says %08x", got, storedCRC)
		}
	}

	s := &summary{
		schemas:       map[uint16]*Schema{},
		channels:      map[uint16]*Channel{},
		chunkChannels: map[int64][]uint16{},
	}
	for i := 0; i < len(buf); {
		recOff := sumOff + int64(i)
		if len(buf)-i < recordHeaderLen || binary.LittleEndian.Uint64(buf[i+1:]) > uint64(len(buf)-i-recordHeaderLen) {
			return formatErr(ErrMalformed, recOff, "summary record runs past the Footer")
		}
		op, n := buf[i], int(binary.LittleEndian.Uint64(buf[i+1:]))
		body := buf[i+recordHeaderLen : i+recordHeaderLen+n : i+recordHeaderLen+n]
		i += recordHeaderLen + n
		ok := true
		switch op {
		case opSchema:
			var sc Schema
			if sc, ok = parseSchema(body); ok && sc.ID != 0 {
				s.schemas[sc.ID] = &sc
			}
		case opChannel:
			var ch Channel
			if ch, ok = parseChannel(body); ok {
				s.channels[ch.ID] = &ch
			}
		case opStatistics:
			s.stats, ok = parseStatistics(body)
		case opChunkIndex:
			d := decoder{b: body}
			d.u64()
			d.u64()
			chunkOff := d.u64()
			d.u64()
			offsets := d.u16u64Map()
			ok = !d.bad
			var chans []uint16
			if len(offsets) > 0 {
				chans = make([]uint16, 0, len(offsets))
				for ch := range offsets {
					chans = append(chans, ch)
				}
			}
			s.chunkChannels[int64(chunkOff)] = chans
		case opMetadataIndex:
			d := decoder{b: body}
			mi := metadataIndex{offset: d.u64(), length: d.u64(), name: d.str()}
			ok = !d.bad
			s.metadata = append(s.metadata, mi)
		}
		if !ok {
			return formatErr(ErrMalformed, recOff, "summary record with opcode 0x%02x does not decode", op)
		}
	}
	r.summary = s
	return nil
}

func parseStatistics(b []byte) (*statistics, bool) {
	d := decoder{b: b}
	s := &statistics{
		messageCount: d.u64(), schemaCount: d.u16(), channelCount: d.u32(),
		attachmentCount: d.u32(), metadataCount: d.u32(), chunkCount: d.u32(),
		start: d.u64(), end: d.u64(),
	}
	s.channelCounts = d.u16u64Map()
	return s, !d.bad
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
	AttachmentCount  uint32

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
	info := Info{Profile: r.profile, Library: r.library}
	if s := r.summary; s != nil && s.stats != nil && (len(s.stats.channelCounts) > 0 || s.stats.messageCount == 0) {
		st := s.stats
		info.FromSummary = true
		info.MessageCount = st.messageCount
		info.MessageStartTime, info.MessageEndTime = st.start, st.end
		info.ChunkCount, info.MetadataCount, info.AttachmentCount = st.chunkCount, st.metadataCount, st.attachmentCount
		info.Schemas = maps.Clone(s.schemas)
		info.Channels = maps.Clone(s.channels)
		info.ChannelMessageCounts = maps.Clone(st.channelCounts)
		return info, nil
	}

	info.ChannelMessageCounts = map[uint16]uint64{}
	sc := r.newScan()
	sc.onChunk = func() { info.ChunkCount++ }
	sc.onAttachment = func() { info.AttachmentCount++ }
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
				chans, ok := s.chunkChannels[off]
				if topics == nil || !ok || chans == nil {
					return true
				}
				for _, id := range chans {
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
	if s := r.summary; s != nil && (s.stats == nil || int(s.stats.metadataCount) == len(s.metadata)) {
		for _, mi := range s.metadata {
			off := int64(mi.offset)
			if mi.offset > uint64(r.size) || mi.length < recordHeaderLen || mi.length > uint64(r.size-off) {
				return out, formatErr(ErrMalformed, off, "Metadata Index points outside the file")
			}
			var hdr [recordHeaderLen]byte
			if err := r.readAt(hdr[:], off); err != nil {
				return out, err
			}
			n := binary.LittleEndian.Uint64(hdr[1:])
			if hdr[0] != opMetadata || n != mi.length-recordHeaderLen {
				return out, formatErr(ErrMalformed, off, "Metadata Index does not point to a Metadata record")
			}
			body, err := r.readBody(off, n)
			if err != nil {
				return out, err
			}
			m, ok := parseMetadata(body)
			if !ok {
				return out, formatErr(ErrMalformed, off, "Metadata record does not decode")
			}
			out = append(out, m)
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

	wantChunk    func(off int64, start, end uint64) bool // false: do not decompress
	onSchema     func(*Schema) error                     // new definitions only
	onChannel    func(*Channel) error                    // new definitions only
	onMessage    func(MessageView) error
	onMetadata   func(Metadata) error
	onChunk      func()
	onAttachment func()
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
// End record, whose CRC it checks against everything read on the way.
func (r *Reader) scan(sc *scanner) error {
	if r.headerCut != nil {
		return r.headerCut
	}
	off := r.dataStart
	crc := r.prefixCRC
	var hdr [recordHeaderLen]byte
	for {
		if off == r.size {
			return formatErr(ErrTruncated, off, "file ends without a Data End record (writer not closed?)")
		}
		if r.size-off < recordHeaderLen {
			return formatErr(ErrTruncated, off, "file ends inside a record header")
		}
		if err := r.readAt(hdr[:], off); err != nil {
			return err
		}
		op := hdr[0]
		if op == opFooter {
			return nil // a file without Data End: lenient, the Footer ends the data too
		}
		body, err := r.readBody(off, binary.LittleEndian.Uint64(hdr[1:]))
		if err != nil {
			return err
		}
		if op == opDataEnd {
			if len(body) < dataEndLen {
				return formatErr(ErrMalformed, off, "Data End record too short")
			}
			if want := binary.LittleEndian.Uint32(body); want != 0 && want != crc {
				return formatErr(ErrCRC, off, "data section CRC is %08x, Data End says %08x", crc, want)
			}
			return nil
		}
		crc = crc32.Update(crc32.Update(crc, crcTable, hdr[:]), crcTable, body)
		if err := r.record(sc, op, body, off); err != nil {
			return err
		}
		off += recordHeaderLen + int64(len(body))
	}
}

func (r *Reader) record(sc *scanner, op byte, body []byte, off int64) error {
	switch op {
	case opSchema, opChannel, opMessage:
		return sc.inner(op, body, off, -1)
	case opChunk:
		return r.chunk(sc, body, off)
	case opMetadata:
		if sc.onMetadata == nil {
			return nil
		}
		m, ok := parseMetadata(body)
		if !ok {
			return formatErr(ErrMalformed, off, "Metadata record does not decode")
		}
		return sc.onMetadata(m)
	case opAttachment:
		if sc.onAttachment != nil {
			sc.onAttachment()
		}
	}
	return nil // Message Index, unknown and private records: nothing to do
}

func (r *Reader) chunk(sc *scanner, body []byte, off int64) error {
	d := decoder{b: body}
	start, end, size, storedCRC := d.u64(), d.u64(), d.u64(), d.u32()
	compression := d.str()
	records := d.take(d.u64())
	if d.bad {
		return formatErr(ErrMalformed, off, "Chunk record does not decode")
	}
	if sc.onChunk != nil {
		sc.onChunk()
	}
	if sc.wantChunk != nil && !sc.wantChunk(off, start, end) {
		return nil
	}
	if size > uint64(r.maxAlloc) {
		return formatErr(ErrTooLarge, off, "chunk of %d uncompressed bytes exceeds the %d byte limit", size, r.maxAlloc)
	}
	data := records
	switch compression {
	case CompressionNone:
		if uint64(len(records)) != size {
			return formatErr(ErrMalformed, off, "uncompressed chunk holds %d bytes but declares %d", len(records), size)
		}
	case CompressionZstd, CompressionLZ4:
		var err error
		if data, err = decompress(compression, records, size); err != nil {
			return formatErr(ErrMalformed, off, "decompressing %s chunk: %v", compression, err)
		}
	default:
		return formatErr(ErrUnsupportedCompression, off, "chunk compression %q", compression)
	}
	if storedCRC != 0 {
		if got := crc32.Checksum(data, crcTable); got != storedCRC {
			return formatErr(ErrCRC, off, "chunk CRC is %08x, Chunk record says %08x", got, storedCRC)
		}
	}
	for i := 0; i < len(data); {
		if len(data)-i < recordHeaderLen || binary.LittleEndian.Uint64(data[i+1:]) > uint64(len(data)-i-recordHeaderLen) {
			return formatErr(ErrMalformed, off, "record at offset %d in the chunk runs past its end", i)
		}
		op, n := data[i], int(binary.LittleEndian.Uint64(data[i+1:]))
		rec := data[i+recordHeaderLen : i+recordHeaderLen+n : i+recordHeaderLen+n]
		if err := sc.inner(op, rec, off, i); err != nil {
			return err
		}
		i += recordHeaderLen + n
	}
	return nil
}

// inner handles the records that may appear both in the data section and
// inside chunks. off is the offset of the record, or of the chunk holding it,
// which errors and MessageView report; inChunk is the record's offset inside
// the chunk's records, or -1.
func (sc *scanner) inner(op byte, body []byte, off int64, inChunk int) error {
	where := func() string {
		if inChunk < 0 {
			return ""
		}
		return fmt.Sprintf(" (at offset %d in the chunk)", inChunk)
	}
	switch op {
	case opSchema:
		s, ok := parseSchema(body)
		if !ok {
			return formatErr(ErrMalformed, off, "Schema record does not decode%s", where())
		}
		if s.ID == 0 {
			return nil // invalid per the spec, which says to ignore it
		}
		if old := sc.schemas[s.ID]; old != nil {
			if !sameSchema(old, &s) {
				return formatErr(ErrMalformed, off, "Schema %d redefined differently%s", s.ID, where())
			}
			return nil
		}
		sc.schemas[s.ID] = &s
		if sc.onSchema != nil {
			return sc.onSchema(&s)
		}
	case opChannel:
		c, ok := parseChannel(body)
		if !ok {
			return formatErr(ErrMalformed, off, "Channel record does not decode%s", where())
		}
		if old := sc.channels[c.ID]; old != nil {
			if !sameChannel(old, &c) {
				return formatErr(ErrMalformed, off, "Channel %d redefined differently%s", c.ID, where())
			}
			return nil
		}
		sc.channels[c.ID] = &c
		if sc.onChannel != nil {
			return sc.onChannel(&c)
		}
	case opMessage:
		if sc.onMessage == nil {
			return nil
		}
		m, ok := parseMessage(body)
		if !ok {
			return formatErr(ErrMalformed, off, "Message record too short%s", where())
		}
		ch := sc.channels[m.Channel]
		if ch == nil {
			return formatErr(ErrMalformed, off, "Message on undefined channel %d%s", m.Channel, where())
		}
		return sc.onMessage(MessageView{Channel: ch, Schema: sc.schemas[ch.SchemaID], Message: m, Offset: off})
	}
	return nil
}

// RecoverResult reports what Recover salvaged.
type RecoverResult struct {
	Messages uint64
	// Damage is the *FormatError that ended the salvage, nil if the source
	// data section was intact to its Data End record.
	Damage error
}

// Recover copies every intact schema, channel, message and metadata record of
// the MCAP file src into a new, complete file written to dst with opts, so a
// recording cut short by a crash becomes an ordinary indexed file. It stops
// at the first damage, reported in RecoverResult.Damage. Recover does not
// need the source's summary or Footer; channel and schema IDs may be
// renumbered. The error is non-nil only when src is not MCAP or has a
// malformed Header (a src cut inside its Header gives an empty file and
// Damage), reading src or writing dst fails, or src holds something the
// Writer refuses (such as strings that are not UTF-8).
func Recover(dst io.Writer, src io.ReaderAt, size int64, opts WriterOptions) (RecoverResult, error) {
	var res RecoverResult
	r, err := openReader(src, size)
	if err != nil {
		return res, err
	}
	w, err := NewWriter(dst, opts)
	if err != nil {
		return res, err
	}
	schemaIDs := map[uint16]uint16{0: 0}
	channelIDs := map[uint16]uint16{}
	sc := r.newScan()
	sc.onSchema = func(s *Schema) (err error) {
		schemaIDs[s.ID], err = w.AddSchema(s.Name, s.Encoding, s.Data)
		return err
	}
	sc.onChannel = func(c *Channel) (err error) {
		channelIDs[c.ID], err = w.AddChannel(schemaIDs[c.SchemaID], c.Topic, c.MessageEncoding, c.Metadata)
		return err
	}
	sc.onMessage = func(mv MessageView) error {
		m := mv.Message
		m.Channel = channelIDs[m.Channel]
		res.Messages++
		return w.WriteMessage(m)
	}
	sc.onMetadata = func(m Metadata) error { return w.AddMetadata(m.Name, m.Metadata) }
	if err := r.scan(sc); err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			return res, err
		}
		res.Damage = err
	}
	return res, w.Close()
}
