package recording

import (
	"encoding/base64"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"time"

	"github.com/mcl-go/mcl/mcap"

	"github.com/mcl-go/mcl/internal/topic"
)

// Record is one recorded message.
type Record struct {
	Group       netip.AddrPort // the group it was received on (zero if unknown)
	Topic       string         // exact topic bytes
	Sender      netip.AddrPort // the publishing socket (zero if unknown)
	LogTime     time.Time      // when it was received
	PublishTime time.Time      // the MCL Message timestamp, or LogTime
	Encoding    string         // message encoding: "msgpack" for mcl recordings
	Payload     []byte         // the payload's bytes as received; owned by the caller
	Offset      int64          // file offset of the record holding it
}

// Filter selects records. The zero value selects all.
type Filter struct {
	Topics []string  // only these topics, or topics matching these patterns (as mcl.Topics); empty means all
	Start  time.Time // only log times at or after Start (zero: from the beginning)
	End    time.Time // only log times before End (zero: to the end)
}

// File is an open recording.
type File struct {
	f    *os.File
	r    *mcap.Reader
	name string
}

// Open opens a recording. Errors name the file: not found, not MCAP (bad
// magic), damaged header.
func Open(name string) (*File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("recording: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recording: %w", err)
	}
	r, err := mcap.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recording: %s: %w", name, err)
	}
	return &File{f: f, r: r, name: name}, nil
}

// Name is the file's name.
func (f *File) Name() string { return f.name }

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// Info summarizes the file; on a damaged file (a recorder that was killed)
// it counts what is intact and returns the damage as the error, naming the
// file and offset.
func (f *File) Info() (mcap.Info, error) {
	info, err := f.r.Info()
	if err != nil {
		err = fmt.Errorf("recording: %s: %w", f.name, err)
	}
	return info, err
}

// Records iterates over the file's records that pass filter, in file
// order (receive order, for mcl recordings). On damage it yields every
// intact record first, then one error naming the file and offset.
func (f *File) Records(filter Filter) iter.Seq2[Record, error] {
	opts := mcap.ReadOptions{Topics: filter.Topics}
	if !filter.Start.IsZero() {
		opts.Start = uint64(filter.Start.UnixNano())
	}
	if !filter.End.IsZero() {
		opts.End = uint64(filter.End.UnixNano())
	}
	// Non-UTF-8 topics are stored replaced, and patterns are ours: filter
	// on the exact topic after.
	opts.Topics = nil
	want, err := topic.NewFilter(filter.Topics)
	return func(yield func(Record, error) bool) {
		if err != nil {
			yield(Record{}, fmt.Errorf("recording: %w", err))
			return
		}
		for mv, err := range f.r.Messages(opts) {
			if err != nil {
				yield(Record{}, fmt.Errorf("recording: %s: %w", f.name, err))
				return
			}
			rec := toRecord(mv)
			if !want.MatchString(rec.Topic) {
				continue
			}
			if !yield(rec, nil) {
				return
			}
		}
	}
}

func toRecord(mv mcap.MessageView) Record {
	ch := mv.Channel
	r := Record{
		Topic:       ch.Topic,
		LogTime:     time.Unix(0, int64(mv.Message.LogTime)),
		PublishTime: time.Unix(0, int64(mv.Message.PublishTime)),
		Encoding:    ch.MessageEncoding,
		Payload:     mv.Message.Data,
		Offset:      mv.Offset,
	}
	if raw, err := base64.StdEncoding.DecodeString(ch.Metadata[MetaTopicBase64]); err == nil && len(raw) > 0 {
		r.Topic = string(raw)
	}
	r.Group, _ = netip.ParseAddrPort(ch.Metadata[MetaGroup])
	r.Sender, _ = netip.ParseAddrPort(ch.Metadata[MetaSender])
	return r
}

// Read opens name and iterates over its records, closing it at the end.
func Read(name string, filter Filter) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		f, err := Open(name)
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer f.Close()
		for r, err := range f.Records(filter) {
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}
