package mcap

import (
	"bytes"
	"fmt"
	"maps"

	fmcap "github.com/foxglove/mcap/go/mcap"
)

// Magic is the 8-byte sequence that starts and ends every MCAP file: 0x89,
// "MCAP", the major version "0", "\r\n".
const Magic = "\x89MCAP0\r\n"

// Schema describes how to decode the messages of the channels that refer to
// it: Data, in the schema language Encoding (e.g. "jsonschema"). IDs start
// at 1: a channel's SchemaID 0 means it has no schema. It is the type of
// the MCAP library, github.com/foxglove/mcap/go/mcap.
type Schema = fmcap.Schema

// Channel is a stream of messages on one Topic, all in one MessageEncoding
// (e.g. "msgpack", "json"), with the schema SchemaID (0 for none) and
// Metadata. It is the type of the MCAP library.
type Channel = fmcap.Channel

// Metadata is a named set of key/value pairs stored in the file, e.g. the
// recording host or software versions. It is the type of the MCAP library.
type Metadata = fmcap.Metadata

// Message is one timestamped message on a channel. Times are nanoseconds since
// an epoch of the application's choosing (mcl uses the Unix epoch).
type Message struct {
	Channel     uint16
	Sequence    uint32 // optional counter to detect gaps; 0 if unused
	LogTime     uint64 // when the message was recorded
	PublishTime uint64 // when it was published; the spec asks for LogTime if unknown
	Data        []byte
}

// Sizes from the specification.
const (
	recordHeaderLen = 1 + 8                           // opcode + uint64 content length
	footerLen       = 8 + 8 + 4                       // Footer content
	messageFixedLen = 2 + 4 + 8 + 8                   // Message content before its data
	chunkFixedLen   = 8 + 8 + 8 + 4                   // Chunk content before its compression string
	tailLen         = recordHeaderLen + footerLen + 8 // Footer record + closing magic
	maxID           = 1<<16 - 1
	defaultMaxAlloc = 1 << 30 // refuse to hold records or chunks bigger than this
)

// parse runs one of the library's record parsers on the content of a
// record read from a file. The parsers trust some lengths in their input:
// ParseChunk slices by its records length, and on 32-bit platforms a string
// length of 2 GiB or more turns negative, so a damaged or hostile record
// makes them panic rather than fail. parse turns such a panic into the
// error it should have been.
func parse[T any](parser func([]byte) (*T, error), b []byte) (v *T, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("a length is out of range (%v)", p)
		}
	}()
	return parser(b)
}

func sameChannel(a, b *Channel) bool {
	return a.ID == b.ID && a.SchemaID == b.SchemaID && a.Topic == b.Topic &&
		a.MessageEncoding == b.MessageEncoding && maps.Equal(a.Metadata, b.Metadata)
}

func sameSchema(a, b *Schema) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Encoding == b.Encoding && bytes.Equal(a.Data, b.Data)
}
