// Package mcap writes and reads MCAP files, the container format for
// timestamped pub/sub messages used by ROS 2 and Foxglove
// (https://mcap.dev/spec). mcl uses it to record received messages and replay
// them. It needs no sockets.
//
// The records are encoded and decoded by the field's standard library,
// github.com/foxglove/mcap/go/mcap (whose Schema, Channel and Metadata
// types this package uses as its own). On top of it, this package keeps what
// a recorder that may be killed at any moment needs and that library lacks:
// a Writer whose Flush closes the open chunk and writes it at once, so that
// a recorder flushing on a timer loses at most that interval, and a Reader
// that reads a file whose end is missing up to the cut, checks every CRC,
// and names the offset of any damage.
//
// # Writing
//
// Create a Writer on any io.Writer, register channels (and schemas, if the
// payloads have one), then write messages:
//
//	w, err := mcap.NewWriter(f, mcap.WriterOptions{Chunked: true, Compression: mcap.CompressionZstd})
//	if err != nil { ... }
//	ch, err := w.AddChannel(0, "/robot/pose", "msgpack", nil) // schema 0: schemaless
//	err = w.WriteMessage(mcap.Message{Channel: ch, LogTime: now, PublishTime: now, Data: payload})
//	err = w.Flush() // from here on, a crash cannot lose these messages
//	err = w.Close() // summary, Footer, magic; f itself stays open
//
// Chunked files group records into (optionally zstd- or lz4-compressed)
// chunks followed by message indexes; every chunk repeats the schema and
// channel definitions its messages need, so each is self-describing. Close
// writes a summary section (schemas, channels, statistics, chunk and metadata
// indexes) that lets readers answer questions without scanning the file.
//
// # Reading
//
// Open a file with NewReader and iterate:
//
//	r, err := mcap.NewReader(f, size)
//	info, err := r.Info() // counts, time range, channels
//	for mv, err := range r.Messages(mcap.ReadOptions{Topics: []string{"/robot/pose"}}) {
//		if err != nil { ... } // damage: a *FormatError naming the offset
//		use(mv.Channel.Topic, mv.Message.LogTime, mv.Message.Data)
//	}
//
// # Crash recovery
//
// A file whose writer was killed has no summary or Footer and may end in the
// middle of a record. The Reader handles such files without special calls:
// Info and Messages scan the data section record by record with the
// library's Lexer, yield everything intact before the cut, then report a *FormatError wrapping ErrTruncated (and so
// io.ErrUnexpectedEOF). A file cut before its Header record is complete
// (even an empty one) is such a file with nothing before the cut; a file
// that does not start with the magic is not MCAP (ErrBadMagic) and is
// refused. Recover rewrites such a file into a complete one.
// Every length read from a file is checked against the file size and a 1 GiB
// cap before anything is allocated, so damaged or hostile input cannot cause
// a panic or a huge allocation.
package mcap
