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
	w        *mcap.Writer // writes straight to f, so that w.Written is what f holds
	started  time.Time
	size     int64 // message bytes written to the current file
	channels map[channelKey]uint16
	seqs     map[uint16]uint32
	err      error // sticky: the first write error
	closed   bool
	stats    Stats // Messages and Bytes count closed files only; Stats adds the open one

	stop chan struct{}
	done chan struct{}
}

type channelKey struct {
	group  netip.AddrPort
	topic  string
	sender netip.AddrPort
}

// Stats counts what a Recorder was given and what of it is in its files.
type Stats struct {
	// Received counts the messages given to Write before Close, and
	// ReceivedBytes their payload bytes, whether they were recorded or not.
	Received      uint64
	ReceivedBytes uint64

	// Messages counts the messages in the files, and Bytes their payload
	// bytes: those in complete MCAP records handed to the file system (by
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
}

// Create starts a recording at path: a directory (created if missing), in
// which files named mcl-<UTC start time>-<sequence>.mcap are written so
// that they sort by time, or a file name ending in .mcap. The first file's
// MCAP header is on disk when Create returns, so that a recorder killed at
// any point leaves a file that reads as a recording. Errors:
// ErrSplitNeedsDir, and the file system's, naming the path; a file Create
// fails to start is removed.
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
	if err := r.splitIfDue(time.Now()); err != nil {
		return err
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
		st.Lost = st.Received - st.Messages
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
