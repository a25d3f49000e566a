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
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"encoding/base64"

	"github.com/tinylib/msgp/msgp"

	"github.com/mcl-go/mcl"
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
}

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
	buf      *bufio.Writer
	w        *mcap.Writer
	started  time.Time
	size     int64 // message bytes written to the current file
	channels map[channelKey]uint16
	seqs     map[uint16]uint32
	err      error // sticky: the first write error
	stats    Stats

	stop chan struct{}
	done chan struct{}
}

type channelKey struct {
	group  netip.AddrPort
	topic  string
	sender netip.AddrPort
}

// Stats counts what a Recorder wrote.
type Stats struct {
	Messages uint64 // messages written
	Bytes    uint64 // payload bytes written
	Files    int    // files started
}

// Create starts a recording at path: a directory (created if missing), in
// which files named mcl-<UTC start time>-<sequence>.mcap are written so
// that they sort by time, or a file name ending in .mcap. Errors:
// ErrSplitNeedsDir, and the file system's, naming the path.
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
		return nil, err
	}
	go r.flusher()
	return r, nil
}

// open starts the next file; r.mu is held or r is not yet shared.
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
	r.f = f
	r.buf = bufio.NewWriterSize(f, 1<<20)
	r.w, err = mcap.NewWriter(r.buf, mcap.WriterOptions{Chunked: true, Compression: r.opts.Compression})
	if err != nil {
		f.Close()
		return fmt.Errorf("recording: %s: %w", name, err)
	}
	r.started, r.size = now, 0
	r.channels = map[channelKey]uint16{}
	r.seqs = map[uint16]uint32{}
	r.files = append(r.files, name)
	r.stats.Files++
	return nil
}

// Write records m, received on group. Errors: the first write error (such
// as a full disk), returned by every later call; files finished before it
// are intact.
func (r *Recorder) Write(group netip.AddrPort, m *mcl.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.f == nil {
		return fmt.Errorf("recording: write after Close")
	}
	if err := r.splitIfDue(time.Now()); err != nil {
		return r.fail(err)
	}
	key := channelKey{group, m.Topic, m.Sender}
	id, ok := r.channels[key]
	if !ok {
		var err error
		if id, err = r.w.AddChannel(0, validTopic(m.Topic), "msgpack", channelMeta(key)); err != nil {
			return r.fail(err)
		}
		r.channels[key] = id
	}
	r.seqs[id]++
	logTime := uint64(m.Received.UnixNano())
	err := r.w.WriteMessage(mcap.Message{
		Channel:     id,
		Sequence:    r.seqs[id],
		LogTime:     logTime,
		PublishTime: publishTime(m.Payload, logTime),
		Data:        m.Payload,
	})
	if err != nil {
		return r.fail(err)
	}
	r.stats.Messages++
	r.stats.Bytes += uint64(len(m.Payload))
	r.size += int64(len(m.Payload)) + 31
	return nil
}

func (r *Recorder) splitIfDue(now time.Time) error {
	// The MCAP writer holds a chunk in memory, so what the file will hold
	// is counted here: payloads plus each message record's 31-byte frame.
	bySize := r.opts.SplitSize > 0 && r.size >= r.opts.SplitSize
	byTime := r.opts.SplitDuration > 0 && now.Sub(r.started) >= r.opts.SplitDuration
	if !bySize && !byTime {
		return nil
	}
	if err := r.closeFile(); err != nil {
		return err
	}
	return r.open(now)
}

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
	if err := r.buf.Flush(); err != nil {
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
		err = r.buf.Flush()
	}
	if err == nil {
		err = r.f.Sync()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f = nil
	return err
}

// Files lists the files started so far, in order.
func (r *Recorder) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.files...)
}

// Stats returns what has been written.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
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
	if r.f == nil {
		return r.err
	}
	if r.err != nil {
		r.f.Close()
		r.f = nil
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
