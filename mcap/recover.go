package mcap

import (
	"errors"
	"io"
)

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
