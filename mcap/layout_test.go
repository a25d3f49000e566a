package mcap

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// checkLayout walks a complete file written by Writer and checks the
// structure the spec prescribes, independently of Reader: magic, Header,
// data section ending in Data End, summary records grouped by opcode with
// matching Summary Offset records, Footer fields and CRCs, and that every
// index record points at the record it describes.
func checkLayout(t *testing.T, file []byte, opts WriterOptions) {
	t.Helper()
	u64 := func(off int64) uint64 { return binary.LittleEndian.Uint64(file[off:]) }
	if string(file[:8]) != Magic || string(file[len(file)-8:]) != Magic {
		t.Fatal("magic missing at start or end")
	}
	if file[8] != opHeader {
		t.Fatal("no Header after magic")
	}
	type rec struct {
		op       byte
		off, end int64
	}
	var data []rec
	off := recordEnd(file, 8)
	for {
		r := rec{file[off], off, recordEnd(file, off)}
		data = append(data, r)
		off = r.end
		if r.op == opDataEnd {
			break
		}
		switch r.op {
		case opSchema, opChannel, opMessage, opChunk, opMessageIndex, opMetadata:
		default:
			t.Fatalf("opcode %#x not allowed in the data section (offset %d)", r.op, r.off)
		}
		if opts.Chunked && r.op == opMessage {
			t.Fatalf("chunked file has a message outside chunks at %d", r.off)
		}
		if !opts.Chunked && (r.op == opChunk || r.op == opMessageIndex) {
			t.Fatalf("unchunked file has opcode %#x", r.op)
		}
	}
	dataEnd := data[len(data)-1].off
	if got, want := binary.LittleEndian.Uint32(file[dataEnd+9:]), crc32.ChecksumIEEE(file[:dataEnd]); got != want {
		t.Fatalf("Data End CRC %08x, want %08x", got, want)
	}
	footer := int64(len(file)) - tailLen
	if file[footer] != opFooter || u64(footer+1) != footerLen {
		t.Fatal("Footer not right before the closing magic")
	}
	summaryStart, offsetStart := int64(u64(footer+9)), int64(u64(footer+17))
	if opts.SkipSummary {
		if summaryStart != 0 || offsetStart != 0 || off != footer {
			t.Fatalf("SkipSummary file has summary_start %d, summary_offset_start %d", summaryStart, offsetStart)
		}
		return
	}
	if summaryStart != off {
		t.Fatalf("summary_start %d, but Data End ends at %d", summaryStart, off)
	}
	if got, want := binary.LittleEndian.Uint32(file[footer+25:]), crc32.ChecksumIEEE(file[summaryStart:footer+25]); got != want {
		t.Fatalf("summary CRC %08x, want %08x", got, want)
	}

	// Summary records, grouped by opcode.
	groups := map[byte][2]int64{} // opcode -> start, length
	var order []byte
	for off = summaryStart; off < offsetStart; off = recordEnd(file, off) {
		op := file[off]
		g, seen := groups[op]
		if seen && g[0]+g[1] != off {
			t.Fatalf("summary opcode %#x not grouped (offset %d)", op, off)
		}
		if !seen {
			g[0] = off
			order = append(order, op)
		}
		g[1] = recordEnd(file, off) - g[0]
		groups[op] = g
	}
	if off != offsetStart {
		t.Fatalf("summary ends at %d, summary_offset_start is %d", off, offsetStart)
	}
	want := []byte{opSchema, opChannel, opStatistics, opChunkIndex, opMetadataIndex}
	j := 0
	for _, op := range order {
		for j < len(want) && want[j] != op {
			j++
		}
		if j == len(want) {
			t.Fatalf("summary groups in order %x", order)
		}
	}
	if _, ok := groups[opStatistics]; !ok {
		t.Fatal("no Statistics record")
	}
	n := 0
	for off = offsetStart; off < footer; off = recordEnd(file, off) {
		if file[off] != opSummaryOffset {
			t.Fatalf("opcode %#x in the summary offset section", file[off])
		}
		op := file[off+9]
		g := groups[op]
		if int64(u64(off+10)) != g[0] || int64(u64(off+18)) != g[1] {
			t.Fatalf("Summary Offset for %#x says %d+%d, group is %d+%d", op, u64(off+10), u64(off+18), g[0], g[1])
		}
		n++
	}
	if off != footer || n != len(groups) {
		t.Fatalf("%d Summary Offset records for %d groups", n, len(groups))
	}

	// Chunk indexes point at chunks and their message indexes.
	chunks := 0
	for _, r := range data {
		if r.op == opChunk {
			chunks++
		}
	}
	indexes := 0
	if g, ok := groups[opChunkIndex]; ok {
		for off = g[0]; off < g[0]+g[1]; off = recordEnd(file, off) {
			indexes++
			d := decoder{b: file[off+9 : recordEnd(file, off)]}
			start, end, chunkOff, chunkLen := d.u64(), d.u64(), int64(d.u64()), int64(d.u64())
			idx := d.u16u64Map()
			idxLen := int64(d.u64())
			compression := d.str()
			compressed, uncompressed := d.u64(), d.u64()
			if d.bad || file[chunkOff] != opChunk || recordEnd(file, chunkOff) != chunkOff+chunkLen {
				t.Fatalf("Chunk Index at %d does not point to a chunk", off)
			}
			cd := decoder{b: file[chunkOff+9 : chunkOff+chunkLen]}
			if cd.u64() != start || cd.u64() != end || cd.u64() != uncompressed {
				t.Fatalf("Chunk Index at %d disagrees with its chunk", off)
			}
			cd.u32()
			if cd.str() != compression || cd.u64() != compressed || compression != opts.Compression {
				t.Fatalf("Chunk Index at %d: compression fields", off)
			}
			if opts.SkipMessageIndex != (len(idx) == 0) {
				t.Fatalf("Chunk Index at %d has %d message indexes", off, len(idx))
			}
			total := int64(0)
			for ch, o := range idx {
				mo := int64(o)
				if file[mo] != opMessageIndex || binary.LittleEndian.Uint16(file[mo+9:]) != ch {
					t.Fatalf("message index offset for channel %d is wrong", ch)
				}
				total += recordEnd(file, mo) - mo
			}
			if total != idxLen {
				t.Fatalf("message_index_length %d, records total %d", idxLen, total)
			}
		}
	}
	if indexes != chunks {
		t.Fatalf("%d Chunk Index records for %d chunks", indexes, chunks)
	}
	if g, ok := groups[opMetadataIndex]; ok {
		for off = g[0]; off < g[0]+g[1]; off = recordEnd(file, off) {
			mo, ml := int64(u64(off+9)), int64(u64(off+17))
			if file[mo] != opMetadata || recordEnd(file, mo)-mo != ml {
				t.Fatalf("Metadata Index at %d points to %d+%d", off, mo, ml)
			}
		}
	}
}

func TestLayout(t *testing.T) {
	for _, m := range modes {
		for _, skip := range []bool{false, true} {
			opts := m.opts
			opts.SkipMessageIndex = skip && opts.Chunked
			opts.SkipSummary = skip && !opts.Chunked
			wr := writeSample(t, opts, 1500)
			checkLayout(t, wr.file, opts)
		}
	}
}
