package mcap

import (
	"encoding/binary"
	"maps"
	"slices"
)

// The tests look at files byte by byte, independently of the MCAP library
// the package is built on: these are the opcodes and the encoding, from the
// specification.
const (
	opHeader        = 0x01
	opFooter        = 0x02
	opSchema        = 0x03
	opChannel       = 0x04
	opMessage       = 0x05
	opChunk         = 0x06
	opMessageIndex  = 0x07
	opChunkIndex    = 0x08
	opStatistics    = 0x0B
	opMetadata      = 0x0C
	opMetadataIndex = 0x0D
	opSummaryOffset = 0x0E
	opDataEnd       = 0x0F
)

func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// beginRecord appends an opcode and a placeholder length; endRecord patches
// the length once the content is known.
func beginRecord(b []byte, op byte) ([]byte, int) {
	start := len(b)
	b = append(b, op, 0, 0, 0, 0, 0, 0, 0, 0)
	return b, start
}

func endRecord(b []byte, start int) []byte {
	binary.LittleEndian.PutUint64(b[start+1:], uint64(len(b)-start-recordHeaderLen))
	return b
}

func appendChannel(b []byte, c *Channel) []byte {
	b, start := beginRecord(b, opChannel)
	b = appendU16(b, c.ID)
	b = appendU16(b, c.SchemaID)
	b = appendString(b, c.Topic)
	b = appendString(b, c.MessageEncoding)
	m := appendU32(nil, 0)
	for _, k := range slices.Sorted(maps.Keys(c.Metadata)) {
		m = appendString(appendString(m, k), c.Metadata[k])
	}
	binary.LittleEndian.PutUint32(m, uint32(len(m)-4))
	b = append(b, m...)
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
// read sets bad and yields zero values from then on.
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

func (d *decoder) str() string { return string(d.take(uint64(d.u32()))) }

// u16u64Map decodes Map<uint16, uint64>, used by Statistics and Chunk Index.
func (d *decoder) u16u64Map() map[uint16]uint64 {
	sub := decoder{b: d.take(uint64(d.u32()))}
	m := make(map[uint16]uint64)
	for len(sub.b) > 0 && !sub.bad {
		k := sub.u16()
		m[k] = sub.u64()
	}
	d.bad = d.bad || sub.bad
	return m
}
