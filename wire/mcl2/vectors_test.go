package mcl2

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A vector is a datagram in hex and what decoding it gives, one line per
// header and record, as docs/mcl2.md's readers would write it down:
//
//	header sender=0x... seq=N
//	message topic="..." payload=HEX
//	fragment topic="..." id=N index=N count=N size=N piece=HEX
//	error NAME        (the datagram, or the rest from the record on, is dropped)
//	skip NAME         (one record is skipped: an unknown type)
type vector struct {
	name string
	line int
	data []byte
	want []string
}

func readVectors(t *testing.T) []vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "//"):
		case strings.HasPrefix(line, "# "):
			vs = append(vs, vector{name: line[2:], line: n})
		case len(vs) == 0:
			t.Fatalf("vectors.txt:%d: %q before the first vector's name", n, line)
		case strings.HasPrefix(line, "hex "):
			b, err := hex.DecodeString(strings.ReplaceAll(line[4:], " ", ""))
			if err != nil {
				t.Fatalf("vectors.txt:%d: %v", n, err)
			}
			vs[len(vs)-1].data = append(vs[len(vs)-1].data, b...)
		default:
			vs[len(vs)-1].want = append(vs[len(vs)-1].want, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

var errorNames = map[error]string{
	ErrNotMCL2: "ErrNotMCL2", ErrUnsupported: "ErrUnsupported", ErrUnknownType: "ErrUnknownType",
	ErrTruncated: "ErrTruncated", ErrHeader: "ErrHeader", ErrTopicTooLong: "ErrTopicTooLong",
	ErrRecord: "ErrRecord", ErrEmptyPayload: "ErrEmptyPayload", ErrPiece: "ErrPiece",
}

// describe decodes datagram as a receiver does and writes down what it
// finds, in the vectors' notation.
func describe(datagram []byte) []string {
	h, records, err := ParseHeader(datagram)
	if err != nil {
		return []string{"error " + errorNames[err]}
	}
	out := []string{fmt.Sprintf("header sender=%#x seq=%d", h.Sender, h.Seq)}
	for len(records) > 0 {
		r, rest, err := Next(records)
		switch {
		case errors.Is(err, ErrUnknownType):
			out = append(out, "skip "+errorNames[err])
		case err != nil:
			out = append(out, "error "+errorNames[err])
		case r.IsFragment():
			out = append(out, fmt.Sprintf("fragment topic=%s id=%d index=%d count=%d size=%d piece=%x",
				strconv.Quote(string(r.Topic)), r.Message, r.Index, r.Count, r.Size, r.Payload))
		default:
			out = append(out, fmt.Sprintf("message topic=%s payload=%x", strconv.Quote(string(r.Topic)), r.Payload))
		}
		if err != nil && !errors.Is(err, ErrUnknownType) && rest == nil {
			break
		}
		records = rest
	}
	return out
}

// encode builds the datagram a vector's lines describe with this
// package's encoder, or returns nil if they hold an error or a skip.
func encode(t *testing.T, want []string) []byte {
	var b []byte
	for _, w := range want {
		var topic, data string
		var sender, seq, id uint64
		var index, count, size int
		switch {
		case strings.HasPrefix(w, "header "):
			if _, err := fmt.Sscanf(w, "header sender=%v seq=%d", &sender, &seq); err != nil {
				t.Fatalf("%q: %v", w, err)
			}
			b = AppendHeader(b, sender, seq)
		case strings.HasPrefix(w, "message "):
			if _, err := fmt.Sscanf(w, "message topic=%q payload=%s", &topic, &data); err != nil {
				t.Fatalf("%q: %v", w, err)
			}
			p, _ := hex.DecodeString(data)
			b = AppendMessage(b, topic, p)
		case strings.HasPrefix(w, "fragment "):
			if _, err := fmt.Sscanf(w, "fragment topic=%q id=%d index=%d count=%d size=%d piece=%s", &topic, &id, &index, &count, &size, &data); err != nil {
				t.Fatalf("%q: %v", w, err)
			}
			p, _ := hex.DecodeString(data)
			b = append(AppendFragmentHeader(b, topic, id, index, count, size, len(p)), p...)
		default:
			return nil
		}
	}
	return b
}

// TestVectors checks the decoder against every vector of
// testdata/vectors.txt, and the encoder against those that decode
// without error: encoding what they decode to gives their bytes back.
func TestVectors(t *testing.T) {
	vs := readVectors(t)
	if len(vs) < 10 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		got := describe(v.data)
		if !slicesEqual(got, v.want) {
			t.Errorf("vectors.txt:%d %s:\n got  %q\n want %q", v.line, v.name, got, v.want)
			continue
		}
		if enc := encode(t, v.want); enc != nil && !bytes.Equal(enc, v.data) {
			t.Errorf("vectors.txt:%d %s: encoder gives\n %x\nnot\n %x", v.line, v.name, enc, v.data)
		}
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
