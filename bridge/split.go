package bridge

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names. A bridge sets them on every NATS message it publishes.
const (
	// HeaderTopic holds the exact topic when it is printable UTF-8 text
	// without leading or trailing spaces; otherwise HeaderTopicB64 holds it
	// in standard base64.
	HeaderTopic    = "Mcl-Topic"
	HeaderTopicB64 = "Mcl-Topic-B64"
	// HeaderOrigin is the id of the bridge that published the message.
	HeaderOrigin = "Mcl-Origin"
	// HeaderSender is the address and port the message came from on the
	// group, for information.
	HeaderSender = "Mcl-Sender"
	// HeaderMsg and HeaderPart mark the parts of a message larger than the
	// server's max_payload: each part carries the same HeaderMsg (a number
	// unique for its origin) and HeaderPart "i/n", 1 <= i <= n.
	HeaderMsg  = "Mcl-Msg"
	HeaderPart = "Mcl-Part"
)

// maxParts bounds the parts of one message accepted.
const maxParts = 1 << 16

// parsePart parses "i/n".
func parsePart(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || n < 2 || n > maxParts || i < 1 || i > n {
		return 0, 0, false
	}
	return i, n, true
}

type partial struct {
	parts [][]byte
	got   int
	bytes int
	first time.Time
}

// joiner reassembles messages sent in parts, within a bound on the bytes
// held and a time limit.
type joiner struct {
	mu       sync.Mutex
	pending  map[string]*partial
	bytes    int
	maxBytes int
	timeout  time.Duration
}

func newJoiner(maxBytes int, timeout time.Duration) *joiner {
	return &joiner{pending: make(map[string]*partial), maxBytes: maxBytes, timeout: timeout}
}

// add takes part i of n of the message key. It returns the whole message
// when this part completes it, and how many incomplete messages it gave
// up on (timed out, evicted to stay within the bound, or inconsistent).
func (j *joiner) add(key string, i, n int, data []byte, now time.Time) (whole []byte, dropped int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for k, p := range j.pending {
		if now.Sub(p.first) > j.timeout {
			j.drop(k, p)
			dropped++
		}
	}
	p := j.pending[key]
	if p != nil && len(p.parts) != n {
		j.drop(key, p)
		dropped++
		p = nil
	}
	if p == nil {
		p = &partial{parts: make([][]byte, n), first: now}
		j.pending[key] = p
	}
	if p.parts[i-1] != nil {
		return nil, dropped // a repeat
	}
	for j.bytes+len(data) > j.maxBytes && len(j.pending) > 0 {
		// Evict the oldest other message; alone, this one is refused.
		var ok string
		var old *partial
		for k, q := range j.pending {
			if k != key && (old == nil || q.first.Before(old.first)) {
				ok, old = k, q
			}
		}
		if old == nil {
			j.drop(key, p)
			return nil, dropped + 1
		}
		j.drop(ok, old)
		dropped++
	}
	p.parts[i-1] = data
	p.got++
	p.bytes += len(data)
	j.bytes += len(data)
	if p.got < n {
		return nil, dropped
	}
	whole = make([]byte, 0, p.bytes)
	for _, b := range p.parts {
		whole = append(whole, b...)
	}
	j.bytes -= p.bytes
	delete(j.pending, key)
	return whole, dropped
}

func (j *joiner) drop(key string, p *partial) {
	j.bytes -= p.bytes
	delete(j.pending, key)
}
