package mcap

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// Magic is the 8-byte sequence that starts and ends every MCAP file: 0x89,
// "MCAP", the major version "0", "\r\n".
const Magic = "\x89MCAP0\r\n"

// Record opcodes from the specification.
const (
	opHeader          = 0x01
	opFooter          = 0x02
	opSchema          = 0x03
	opChannel         = 0x04
	opMessage         = 0x05
	opChunk           = 0x06
	opMessageIndex    = 0x07
	opChunkIndex      = 0x08
	opAttachment      = 0x09
	opAttachmentIndex = 0x0A
	opStatistics      = 0x0B
	opMetadata        = 0x0C
	opMetadataIndex   = 0x0D
	opSummaryOffset   = 0x0E
	opDataEnd         = 0x0F
)

const (
	recordHeaderLen = 1 + 8                           // opcode + uint64 content length
	footerLen       = 8 + 8 + 4                       // footer content
	dataEndLen      = 4                               // data end content
	messageFixedLen = 2 + 4 + 8 + 8                   // message content before its data
	chunkFixedLen   = 8 + 8 + 8 + 4                   // chunk content before its compression string
	tailLen         = recordHeaderLen + footerLen + 8 // Footer record + closing magic
	maxID           = 1<<16 - 1
	defaultMaxAlloc = 1 << 30 // refuse to hold records or chunks bigger than this
)

// Schema describes how to decode the messages of the channels that refer to
// it. Data's format is given by Encoding (e.g. "jsonschema", "protobuf").
type Schema struct {
	ID       uint16 // never 0: 0 means "no schema"
	Name     string
	Encoding string
	Data     []byte
}

// Channel is a stream of messages on one topic, all in one MessageEncoding
// (e.g. "msgpack", "json").
type Channel struct {
	ID              uint16
	SchemaID        uint16 // 0 for schemaless channels
	Topic           string
	MessageEncoding string
	Metadata        map[string]string
}

// Message is one timestamped message on a channel. Times are nanoseconds since
// an epoch of the application's choosing (mcl uses the Unix epoch).
type Message struct {
	Channel     uint16
	Sequence    uint32 // optional counter to detect gaps; 0 if unused
	LogTime     uint64 // when the message was recorded
	PublishTime uint64 // when it was published; the spec asks for LogTime if unknown
	Data        []byte
}

// Metadata is a named set of key/value pairs stored in the file, e.g. the
// recording host or software versions.
type Metadata struct {
	Name     string
	Metadata map[string]string
}

var crcTable = crc32.IEEETable

// Encoding helpers: append little-endian fields to a record under
// construction.

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// appendStringMap writes keys in sorted order so equal maps always produce
// equal bytes (the spec requires repeated Channel records to be identical).
func appendStringMap(b []byte, m map[string]string) []byte {
	start := len(b)
	b = appendU32(b, 0)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func stringMapLen(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += 8 + len(k) + len(v)
	}
	return n
}

// beginRecord appends an opcode and a placeholder length; endRecord patches
// the length once the content is known, which saves computing every record's
// size twice.
func beginRecord(b []byte, op byte) ([]byte, int) {
	start := len(b)
	b = append(b, op, 0, 0, 0, 0, 0, 0, 0, 0)
	return b, start
}

func endRecord(b []byte, start int) []byte {
	binary.LittleEndian.PutUint64(b[start+1:], uint64(len(b)-start-recordHeaderLen))
	return b
}

func appendSchema(b []byte, s *Schema) []byte {
	b, start := beginRecord(b, opSchema)
	b = appendU16(b, s.ID)
	b = appendString(b, s.Name)
	b = appendString(b, s.Encoding)
	b = appendU32(b, uint32(len(s.Data)))
	b = append(b, s.Data...)
	return endRecord(b, start)
}

func appendChannel(b []byte, c *Channel) []byte {
	b, start := beginRecord(b, opChannel)
	b = appendU16(b, c.ID)
	b = appendU16(b, c.SchemaID)
	b = appendString(b, c.Topic)
	b = appendString(b, c.MessageEncoding)
	b = appendStringMap(b, c.Metadata)
	return endRecord(b, start)
}

func appendMessageHeader(b []byte, m *Message) []byte {
	b = append(b, opMessage)
	b = appendU64(b, uint64(messageFixedLen+len(m.Data)))
	b = appendU16(b, m.Channel)
	b = appendU32(b, m.Sequence)
	b = appendU64(b, m.LogTime)
	return appendU64(b, m.PublishTime)
}

// decoder reads fields from one record's content. The first out-of-bounds
// read sets bad and yields zero values from then on, so parsers check once at
// the end instead of after every field; every length is checked against the
// bytes actually present, so a corrupt length can never cause a large
// allocation.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n uint64) []byte {
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) bytes32() []byte { return d.take(uint64(d.u32())) }
func (d *decoder) str() string     { return string(d.bytes32()) }

// decodeMap decodes a Map<K, V>: a uint32 byte length, then key and value
// pairs until those bytes are used up.
func decodeMap[K comparable, V any](d *decoder, key func(*decoder) K, val func(*decoder) V) map[K]V {
	sub := decoder{b: d.bytes32()}
	m := make(map[K]V)
	for len(sub.b) > 0 && !sub.bad {
		k := key(&sub)
		m[k] = val(&sub)
	}
	d.bad = d.bad || sub.bad
	return m
}

func (d *decoder) stringMap() map[string]string {
	return decodeMap(d, (*decoder).str, (*decoder).str)
}

// u16u64Map decodes Map<uint16, uint64>, used by Statistics and Chunk Index.
func (d *decoder) u16u64Map() map[uint16]uint64 {
	return decodeMap(d, (*decoder).u16, (*decoder).u64)
}

func parseSchema(b []byte) (Schema, bool) {
	d := decoder{b: b}
	s := Schema{ID: d.u16(), Name: d.str(), Encoding: d.str()}
	s.Data = d.bytes32()
	return s, !d.bad
}

func parseChannel(b []byte) (Channel, bool) {
	d := decoder{b: b}
	c := Channel{ID: d.u16(), SchemaID: d.u16(), Topic: d.str(), MessageEncoding: d.str()}
	c.Metadata = d.stringMap()
	return c, !d.bad
}

func parseMessage(b []byte) (Message, bool) {
	d := decoder{b: b}
	m := Message{Channel: d.u16(), Sequence: d.u32(), LogTime: d.u64(), PublishTime: d.u64()}
	m.Data = d.b[:len(d.b):len(d.b)] // capped so an append by the caller cannot clobber the next record
	return m, !d.bad
}

func parseMetadata(b []byte) (Metadata, bool) {
	d := decoder{b: b}
	m := Metadata{Name: d.str()}
	m.Metadata = d.stringMap()
	return m, !d.bad
}

func sameChannel(a, b *Channel) bool {
	if a.ID != b.ID || a.SchemaID != b.SchemaID || a.Topic != b.Topic ||
		a.MessageEncoding != b.MessageEncoding || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if w, ok := b.Metadata[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sameSchema(a, b *Schema) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Encoding == b.Encoding && string(a.Data) == string(b.Data)
}
