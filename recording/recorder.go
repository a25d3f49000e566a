// Package recording writes what crosses an mcl group to MCAP files and
// reads it back, for the `mcl record`, `replay`, `info`, `dump` and
// `convert` commands and for programs of their own.
//
// A recording holds one MCAP channel per (group, topic, sender): MCAP has no
// per-message metadata, so the sender goes in the channel's metadata along
// with the group. Messages are the payloads' exact msgpack bytes (message
// encoding "msgpack", no schema), with the receive time as log time and, for
// MCL Message maps that carry a "timestamp", that time as publish time.
//
// With Options.Encoding "json", messages are JSON that Foxglove reads and
// plots as it is, each channel with a "jsonschema" schema learnt from its
// topic's messages (or from a Go type: see Options.Types). The JSON is a
// rendering, not the payload: see Options.Encoding for what it loses.
//
//	rec, err := recording.Create("logs/", recording.Options{SplitSize: 1 << 30})
//	...
//	rec.Write(conn.Group(), msg) // from a subscriber's callback
//	...
//	rec.Close()
//
//	for r, err := range recording.Read("logs/mcl-20261125T140501Z-0001.mcap", recording.Filter{Topics: []string{"gps"}}) {
//		...
//	}
package recording

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/mcap"
)

// Channel metadata keys.
const (
	MetaGroup       = "group"        // the group and port, as in "[ff15::c73d:cf41:ea8e:b0a0]:26000"
	MetaSender      = "sender"       // the publishing socket's address and port
	MetaTopicBase64 = "topic_base64" // the topic's bytes when they are not UTF-8 (MCAP topics must be)
)

// DefaultFlushInterval bounds what a crash of the recorder can lose.
const DefaultFlushInterval = time.Second

// Options configures a Recorder. The zero value writes one zstd-compressed
// file, flushed every second.
type Options struct {
	// SplitSize starts a new file once the current one holds this many
	// bytes; 0 never splits by size.
	SplitSize int64
	// SplitDuration starts a new file once the current one spans this
	// long; 0 never splits by time.
	SplitDuration time.Duration
	// FlushInterval is the longest time between a message's arrival and
	// its being on disk, complete and readable even if the recorder is
	// killed (default DefaultFlushInterval).
	FlushInterval time.Duration
	// Compression of MCAP chunks: "zstd" (default), "lz4" or "none".
	Compression string

	// Encoding of the messages: "msgpack" (default, also "") records the
	// payloads' exact bytes, losslessly, without schema. "json" records
	// them as JSON objects that Foxglove reads (payloads that are not maps
	// wrapped as {"data":...}, binary data as base64 strings, msgpack
	// timestamps as {"sec","nsec"}; see docs/recording.md), each valid
	// against its channel's "jsonschema" Schema record. The JSON loses
	// what JSON cannot say: binary versus text strings (both are strings),
	// integer versus float for whole numbers once read back, map keys that
	// are not strings (written as strings), duplicate keys (readers keep
	// the last), the types of ext values other than timestamps; and a
	// payload that is not one msgpack value is recorded as
	// {"$raw":"<base64 of its bytes>"}. mcl replay needs msgpack.
	//
	// A topic's schema is inferred from its first message and widened
	// when a later one does not fit (a new member, a number where there
	// were integers): the widened schema goes in a new Schema record with
	// a new channel for the topic, so that each message is valid against
	// its own channel's schema. After MaxSchemaChanges such changes in
	// one file, the topic's later messages in that file go under a schema
	// that describes no member (any object is valid against it), counted
	// in Stats.Undescribed.
	Encoding string

	// Types are typed message types (see mcl.Register) whose Go
	// declarations, with Encoding "json", give the first schema of the
	// topics whose first message is of one of them (a map whose "name" is
	// the type's), named by the type's name instead of the topic's. Make
	// them with TypeOf.
	Types []MessageType
}

// MaxSchemaChanges bounds, per topic and file of a JSON recording, the
// Schema records (and channels) added after the topic's first, so that
// payloads of ever new shapes cannot grow a file's list of schemas and
// channels without bound.
const MaxSchemaChanges = 16

// maxTopics bounds the topics whose schemas a JSON recording keeps: those
// of the current file and of the one before (see open), each of which has
// at most as many as MCAP's 16-bit IDs allow.
const maxTopics = 2 * (1<<16 - 1)

// MessageType is a typed message type whose Go declaration describes the
// topics that carry it in a JSON recording. Make one with TypeOf.
type MessageType struct {
	name   string
	schema *msgjson.Schema
}

// TypeOf returns the MessageType of T, which mcl.Register named. Errors:
// mcl.ErrNotRegistered, wrapped, when T has no name.
func TypeOf[T any]() (MessageType, error) {
	name, ok := mcl.TypeName[T]()
	if !ok {
		return MessageType{}, fmt.Errorf("recording: %w: %s: call mcl.Register first", mcl.ErrNotRegistered, reflect.TypeFor[T]())
	}
	s, err := msgjson.TypeSchema(reflect.TypeFor[T]())
	if err != nil { // cannot happen: Register accepts structs only
		return MessageType{}, fmt.Errorf("recording: %w", err)
	}
	// The keys every typed message adds to its fields, as the publisher
	// writes them: learnt from a message holding only them.
	probe := msgp.AppendMapHeader(nil, 2)
	probe = msgp.AppendString(probe, "name")
	probe = msgp.AppendString(probe, name)
	probe = msgp.AppendString(probe, "timestamp")
	probe = msgp.AppendFloat64(probe, 0.5)
	if _, err := msgjson.ToFoxgloveJSON(nil, probe, s); err != nil {
		return MessageType{}, fmt.Errorf("recording: %w", err) // cannot happen: a valid map
	}
	return MessageType{name: name, schema: s}, nil
}

// Name returns the name T was registered under.
func (t MessageType) Name() string { return t.name }

// ErrSplitNeedsDir reports splitting requested into a single file name.
var ErrSplitNeedsDir = errors.New("recording: splitting needs a directory to write numbered files into")

// Recorder writes messages to MCAP files. It is safe for concurrent use.
type Recorder struct {
	opts  Options
	dir   string // "" when writing one named file
	path  string // that file
	seq   int    // files started
	files []string

	mu       sync.Mutex
	f        *os.File
	w        *mcap.Writer // writes straight to f, so that w.Written is what f holds
	started  time.Time
	size     int64 // message bytes written to the current file
	channels map[channelKey]uint16
	seqs     map[uint16]uint32
	err      error // sticky: the first write error
	closed   bool
	stats    Stats // Messages and Bytes count closed files only; Stats adds the open one

	// With Encoding "json":
	json   bool
	types  map[string]MessageType
	topics map[string]*jsonTopic
	buf    []byte // the JSON of the message being written

	stop chan struct{}
	done chan struct{}
}

type channelKey struct {
	group  netip.AddrPort
	topic  string
	sender netip.AddrPort
	schema uint16 // in a JSON recording, the topic's schema when the channel was made
}

// jsonTopic is what a JSON recording knows of one topic.
type jsonTopic struct {
	schema *msgjson.Schema // widened by every message of the topic, across files
	name   string          // of its Schema records

	// In the current file:
	id       uint16 // the topic's Schema record, 0 before its first message
	text     []byte // that record's schema
	seen     uint64 // schema.Widenings() when text was checked against it
	changes  int    // Schema records added after the first
	catchAll bool   // past MaxSchemaChanges: id describes no member
}

// Stats counts what a Recorder was given and what of it is in its files.
type Stats struct {
	// Received counts the messages given to Write before Close, and
	// ReceivedBytes their payload bytes, whether they were recorded or not.
	Received      uint64
	ReceivedBytes uint64

	// Messages counts the messages in the files, and Bytes their payload
	// bytes (in a JSON recording, of their JSON): those in complete MCAP records handed to the file system (by
	// a flush, a full chunk, a split or Close), which every reader gets
	// back even if the recorder is killed now. Until Close, the other
	// messages received wait in memory for the next flush.
	Messages uint64
	Bytes    uint64

	// Lost counts the messages received that will never be in a file
	// because a write failed (a full disk): those waiting in memory when
	// it failed and those given to Write after. It is 0 until a write
	// fails, and Received - Messages after.
	Lost uint64

	Files int // files started

	// Refused counts the messages not recorded because their file had no
	// room left for a new channel: MCAP numbers channels and schemas with
	// 16 bits. A recording into a directory starts a new file instead; one
	// into a single file refuses the messages of its 65536th channel and
	// later new ones, and records those of its other channels.
	Refused uint64

	// Undescribed counts the messages of a JSON recording written under a
	// schema that describes no member, because their topic's schema had
	// changed MaxSchemaChanges times in the file already.
	Undescribed uint64
}

// Create starts a recording at path: a directory (created if missing), in
// which files named mcl-<UTC start time>-<sequence>.mcap are written so
// that they sort by time, or a file name ending in .mcap. The first file's
// MCAP header is on disk when Create returns, so that a recorder killed at
// any point leaves a file that reads as a recording. Errors:
// ErrSplitNeedsDir, a bad Compression or Encoding, and the file system's,
// naming the path; a file Create fails to start is removed.
func Create(path string, opts Options) (*Recorder, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	switch opts.Compression {
	case "":
		opts.Compression = mcap.CompressionZstd
	case "none":
		opts.Compression = mcap.CompressionNone
	case mcap.CompressionZstd, mcap.CompressionLZ4:
	default:
		return nil, fmt.Errorf("recording: compression %q: use zstd, lz4 or none", opts.Compression)
	}
	r := &Recorder{opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	switch opts.Encoding {
	case "", "msgpack":
	case "json":
		r.json = true
		r.topics = map[string]*jsonTopic{}
		r.types = map[string]MessageType{}
		for _, t := range opts.Types {
			if t.schema == nil {
				return nil, errors.New("recording: a MessageType not made by TypeOf")
			}
			r.types[t.name] = t
		}
	default:
		return nil, fmt.Errorf("recording: encoding %q: use msgpack or json", opts.Encoding)
	}
	if strings.HasSuffix(path, ".mcap") {
		if opts.SplitSize > 0 || opts.SplitDuration > 0 {
			return nil, fmt.Errorf("%w: %s", ErrSplitNeedsDir, path)
		}
		r.path = path
	} else {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("recording: %w", err)
		}
		r.dir = path
	}
	if err := r.open(time.Now()); err != nil {
		if len(r.files) > 0 {
			os.Remove(r.files[0])
		}
		return nil, err
	}
	go r.flusher()
	return r, nil
}

// open starts the next file; r.mu is held or r is not yet shared. Its
// errors name the file.
func (r *Recorder) open(now time.Time) error {
	r.seq++
	name := r.path
	if r.dir != "" {
		name = filepath.Join(r.dir, fmt.Sprintf("mcl-%s-%04d.mcap", now.UTC().Format("20060102T150405Z"), r.seq))
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	r.files = append(r.files, name)
	r.stats.Files++
	// The magic and Header go to disk now, not with the first flush: a
	// recorder killed before that would otherwise leave an empty file.
	w, err := mcap.NewWriter(f, mcap.WriterOptions{Chunked: true, Compression: r.opts.Compression})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("recording: %s: %w", name, err)
	}
	r.f, r.w = f, w
	r.started, r.size = now, 0
	r.channels = map[channelKey]uint16{}
	r.seqs = map[uint16]uint32{}
	for name, t := range r.topics { // each file has schemas of its own
		if t.id == 0 {
			// Not seen in the file just closed: forgotten, so that a
			// stream of ever new topics cannot grow r.topics without
			// bound.
			delete(r.topics, name)
		}
		t.id, t.text, t.changes, t.catchAll = 0, nil, 0, false
	}
	return nil
}

// Write records m, received on group. Errors: the first write error (such
// as a full disk), returned by every later call; files finished before it
// are intact.
func (r *Recorder) Write(group netip.AddrPort, m *mcl.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("recording: write after Close")
	}
	r.stats.Received++
	r.stats.ReceivedBytes += uint64(len(m.Payload))
	if r.err != nil {
		return r.err
	}
	now := time.Now()
	if err := r.splitIfDue(now); err != nil {
		return err
	}
	data, id, err := r.channel(group, m)
	if errors.Is(err, mcap.ErrTooMany) && r.dir != "" {
		// The file has all the channels (or schemas) MCAP's 16-bit IDs
		// allow: a new file has room again.
		if err := r.split(now); err != nil {
			return err
		}
		data, id, err = r.channel(group, m)
	}
	if errors.Is(err, mcap.ErrTooMany) {
		r.stats.Refused++
		return nil
	}
	if err != nil {
		return r.fail(err)
	}
	r.seqs[id]++
	logTime := uint64(m.Received.UnixNano())
	err = r.w.WriteMessage(mcap.Message{
		Channel:     id,
		Sequence:    r.seqs[id],
		LogTime:     logTime,
		PublishTime: publishTime(m.Payload, logTime),
		Data:        data,
	})
	if err != nil {
		return r.fail(err)
	}
	r.size += int64(len(data)) + 31
	return nil
}

// channel returns m's data as the file records it and the ID of its
// channel, which it adds to the file when new. r.mu is held. Errors:
// mcap.ErrTooMany when the file has no room for the channel or its
// schema, and the MCAP writer's.
func (r *Recorder) channel(group netip.AddrPort, m *mcl.Message) ([]byte, uint16, error) {
	data, encoding := m.Payload, "msgpack"
	key := channelKey{group, m.Topic, m.Sender, 0}
	if r.json {
		var err error
		if data, key.schema, err = r.toJSON(m); err != nil {
			return nil, 0, err
		}
		encoding = "json"
	}
	if id, ok := r.channels[key]; ok {
		return data, id, nil
	}
	id, err := r.w.AddChannel(key.schema, validTopic(m.Topic), encoding, channelMeta(key))
	if err != nil {
		return nil, 0, err
	}
	r.channels[key] = id
	return data, id, nil
}

// toJSON renders m's payload for a JSON recording, widening its topic's
// schema, and returns the JSON (valid until the next call) and the ID of
// the Schema record it is valid against, which it adds to the file when
// the schema changed. r.mu is held. Errors: the MCAP writer's.
func (r *Recorder) toJSON(m *mcl.Message) ([]byte, uint16, error) {
	t := r.topics[m.Topic]
	if t == nil {
		if len(r.topics) >= maxTopics {
			return nil, 0, mcap.ErrTooMany
		}
		t = &jsonTopic{name: validTopic(m.Topic)}
		if typ, ok := r.types[typedName(m.Payload)]; ok {
			t.schema, t.name = typ.schema.Clone(), typ.name
		} else {
			t.schema = msgjson.NewSchema()
		}
		r.topics[m.Topic] = t
	}
	out, err := msgjson.ToFoxgloveJSON(r.buf[:0], m.Payload, t.schema)
	if err != nil {
		// Not one msgpack value (a peer's raw bytes): its bytes as they are.
		raw := msgp.AppendMapHeader(nil, 1)
		raw = msgp.AppendString(raw, "$raw")
		raw = msgp.AppendBytes(raw, m.Payload)
		if out, err = msgjson.ToFoxgloveJSON(r.buf[:0], raw, t.schema); err != nil {
			return nil, 0, err // cannot happen: a valid map
		}
	}
	r.buf = out
	switch {
	case t.catchAll:
		r.stats.Undescribed++
		return out, t.id, nil
	case t.id != 0 && t.schema.Widenings() == t.seen:
		return out, t.id, nil // the common case: nothing new
	}
	// The message may need a wider schema than the file has for the topic.
	text := t.schema.AppendJSON(nil, t.name)
	if t.id != 0 && bytes.Equal(text, t.text) {
		t.seen = t.schema.Widenings()
		return out, t.id, nil // it changed where the schema says nothing
	}
	catchAll := t.id != 0 && t.changes == MaxSchemaChanges
	if catchAll {
		text = msgjson.NewSchema().AppendJSON(nil, t.name)
	}
	id, err := r.w.AddSchema(t.name, "jsonschema", text)
	if err != nil {
		return nil, 0, err // t as it was: the next message tries again
	}
	if t.id != 0 {
		t.changes++
	}
	if catchAll {
		t.catchAll = true
		r.stats.Undescribed++
	}
	t.id, t.text, t.seen = id, text, t.schema.Widenings()
	r.size += int64(len(text))
	return out, id, nil
}

// typedName returns the "name" of a typed message (a map with a string
// "name"), or "" for any other payload. It reads only the top-level keys.
func typedName(payload []byte) string {
	n, b, err := msgp.ReadMapHeaderBytes(payload)
	if err != nil {
		return ""
	}
	for range n {
		var key []byte
		if key, b, err = msgp.ReadMapKeyZC(b); err != nil {
			return ""
		}
		if string(key) == "name" {
			if v, _, err := msgp.ReadMapKeyZC(b); err == nil { // str or bin, as Python 2 and 3 pack names
				return string(v)
			}
			return ""
		}
		if b, err = msgp.Skip(b); err != nil {
			return ""
		}
	}
	return ""
}

func (r *Recorder) splitIfDue(now time.Time) error {
	// The MCAP writer holds a chunk in memory, so what the file will hold
	// is counted here: payloads plus each message record's 31-byte frame.
	bySize := r.opts.SplitSize > 0 && r.size >= r.opts.SplitSize
	byTime := r.opts.SplitDuration > 0 && now.Sub(r.started) >= r.opts.SplitDuration
	if !bySize && !byTime {
		return nil
	}
	return r.split(now)
}

// split closes the current file and starts the next. r.mu is held.
// Errors: closing's and opening's, which become the sticky error.
func (r *Recorder) split(now time.Time) error {
	if err := r.closeFile(); err != nil {
		return r.fail(err)
	}
	if err := r.open(now); err != nil {
		r.err = err
		return err
	}
	return nil
}

// fail makes err, from the current (or just closed) file, the sticky error.
func (r *Recorder) fail(err error) error {
	name := r.files[len(r.files)-1]
	r.err = fmt.Errorf("recording: %s: %w", name, err)
	return r.err
}

// Flush puts everything written so far on disk as complete MCAP records,
// readable after a crash. The Recorder also flushes on its own every
// Options.FlushInterval.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked()
}

func (r *Recorder) flushLocked() error {
	if r.err != nil || r.f == nil {
		return r.err
	}
	if err := r.w.Flush(); err != nil {
		return r.fail(err)
	}
	if err := r.f.Sync(); err != nil {
		return r.fail(err)
	}
	return nil
}

func (r *Recorder) flusher() {
	defer close(r.done)
	t := time.NewTicker(r.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Flush()
		}
	}
}

// closeFile finishes the current file: summary, footer, sync, close.
func (r *Recorder) closeFile() error {
	err := r.w.Close()
	if err == nil {
		err = r.f.Sync()
	}
	return r.dropFile(err)
}

// dropFile closes the current file, after a failure or once finished, and
// adds the messages it holds to the totals. It returns err, or else the
// error of closing the file.
func (r *Recorder) dropFile(err error) error {
	m, b := r.w.Written()
	r.stats.Messages += m
	r.stats.Bytes += b
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f, r.w = nil, nil
	return err
}

// Files lists the files started so far, in order.
func (r *Recorder) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.files...)
}

// Stats returns what has been received and what of it is in the files.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	if r.w != nil {
		m, b := r.w.Written()
		st.Messages += m
		st.Bytes += b
	}
	if r.err != nil {
		st.Lost = st.Received - st.Messages - st.Refused
	}
	return st
}

// Close finishes the current file. It is safe to call more than once; it
// returns the first write error, if any.
func (r *Recorder) Close() error {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.f == nil {
		return r.err
	}
	if r.err != nil {
		r.dropFile(nil)
		return r.err
	}
	if err := r.closeFile(); err != nil {
		return r.fail(err)
	}
	return nil
}

func channelMeta(k channelKey) map[string]string {
	m := map[string]string{MetaGroup: k.group.String(), MetaSender: k.sender.String()}
	if !utf8.ValidString(k.topic) {
		m[MetaTopicBase64] = base64.StdEncoding.EncodeToString([]byte(k.topic))
	}
	return m
}

// validTopic is the topic as MCAP can hold it: UTF-8, with invalid bytes
// replaced (the exact bytes are in the channel's metadata).
func validTopic(t string) string { return strings.ToValidUTF8(t, "\uFFFD") }

// publishTime returns the "timestamp" of an MCL Message map (float seconds
// since the Unix epoch) in nanoseconds, or fallback when the payload is not
// such a map. It reads only the top-level keys.
func publishTime(payload []byte, fallback uint64) uint64 {
	n, b, err := msgp.ReadMapHeaderBytes(payload)
	if err != nil {
		return fallback
	}
	for range n {
		var key []byte
		switch msgp.NextType(b) {
		case msgp.StrType:
			key, b, err = msgp.ReadStringZC(b)
		case msgp.BinType:
			key, b, err = msgp.ReadBytesZC(b)
		default:
			b, err = msgp.Skip(b)
		}
		if err != nil {
			return fallback
		}
		if string(key) == "timestamp" {
			switch msgp.NextType(b) {
			case msgp.Float64Type, msgp.Float32Type, msgp.IntType, msgp.UintType:
				f, _, err := msgp.ReadFloat64Bytes(b)
				if err != nil || f <= 0 || f > 1e11 {
					return fallback
				}
				return uint64(f * 1e9)
			}
			return fallback
		}
		if b, err = msgp.Skip(b); err != nil {
			return fallback
		}
	}
	return fallback
}
