package mcl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/vmihailenco/msgpack/v5"
)

// Typed messages, as the original MCL's Message objects: a msgpack map of
// a struct's fields plus "name", the message type's registered name, and
// "timestamp", float seconds since the Unix epoch. Any node that decodes
// plain maps, such as a Python one, understands them.

// Errors of typed messages, wrapped with details: test them with errors.Is.
var (
	// ErrBadType reports a Go type that cannot be a typed message: not a
	// struct, a field using the reserved key "name" or "timestamp", or a
	// type that does not encode as a msgpack map.
	ErrBadType = errors.New("mcl: type cannot be a typed message")
	// ErrNotRegistered reports a type that has no name: call Register first.
	ErrNotRegistered = errors.New("mcl: message type not registered")
	// ErrAlreadyRegistered reports a name registered for another type, or a
	// type registered under another name.
	ErrAlreadyRegistered = errors.New("mcl: message type already registered")
	// ErrNotTyped reports a received payload that is not a typed message:
	// not a msgpack map, or a map without a string "name".
	ErrNotTyped = errors.New("mcl: not a typed message")
	// ErrWrongName reports a typed message whose name is not the
	// subscriber's.
	ErrWrongName = errors.New("mcl: typed message of another name")
	// ErrMissingField reports a typed message that lacks a mandatory field.
	ErrMissingField = errors.New("mcl: typed message lacks a mandatory field")
)

// The keys every typed message carries besides its fields.
const (
	keyName      = "name"
	keyTimestamp = "timestamp"
)

// typeInfo is what the registry knows of a message type.
type typeInfo struct {
	typ       reflect.Type
	name      string
	mandatory []string       // keys a message must carry, in encoding order
	index     map[string]int // mandatory key -> its position in mandatory
}

var registry struct {
	mu     sync.RWMutex
	byName map[string]*typeInfo
	byType map[reflect.Type]*typeInfo
}

// Register names the message type T, a struct, so that TypedPublisher and
// SubscribeTyped can use it; name is the "name" its messages carry (the
// Python class name, for messages shared with the original MCL).
//
// T's fields are encoded and decoded by github.com/vmihailenco/msgpack/v5
// under their `msgpack` tag names (the field name when untagged). A field
// is mandatory, and a message without it is dropped, unless its tag has
// omitempty. The keys "name" and "timestamp" are reserved: no field may use
// them (use PublishAt to choose a timestamp and TypedMessage.Timestamp to
// read it).
//
// Registering the same type under the same name again does nothing.
// Errors: ErrBadOption for an empty name, ErrBadType when T cannot be a
// message type, ErrAlreadyRegistered when name or T is registered with
// another counterpart.
func Register[T any](name string) error {
	typ := reflect.TypeFor[T]()
	if name == "" {
		return fmt.Errorf("%w: empty name for message type %s", ErrBadOption, typ)
	}
	info, err := inspect[T](name)
	if err != nil {
		return err
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if old, ok := registry.byType[typ]; ok {
		if old.name == name {
			return nil
		}
		return fmt.Errorf("%w: type %s is registered as %q, not %q", ErrAlreadyRegistered, typ, old.name, name)
	}
	if old, ok := registry.byName[name]; ok {
		return fmt.Errorf("%w: name %q is registered for type %s, not %s", ErrAlreadyRegistered, name, old.typ, typ)
	}
	if registry.byName == nil {
		registry.byName = make(map[string]*typeInfo)
		registry.byType = make(map[reflect.Type]*typeInfo)
	}
	registry.byName[name] = info
	registry.byType[typ] = info
	return nil
}

// MustRegister is Register that panics on error, for package-level
// declarations and init functions.
func MustRegister[T any](name string) {
	if err := Register[T](name); err != nil {
		panic(err)
	}
}

// TypeName returns the name T was registered under, and whether it was.
func TypeName[T any]() (string, bool) {
	info, err := lookup[T]()
	if err != nil {
		return "", false
	}
	return info.name, true
}

func lookup[T any]() (*typeInfo, error) {
	typ := reflect.TypeFor[T]()
	registry.mu.RLock()
	info := registry.byType[typ]
	registry.mu.RUnlock()
	if info == nil {
		return nil, fmt.Errorf("%w: %s: call mcl.Register[%s](name) first", ErrNotRegistered, typ, typ)
	}
	return info, nil
}

// inspect learns T's keys from the msgpack library itself, so that its
// rules (tags, omitempty, embedded structs) apply unchanged: the zero T
// encodes exactly the fields without omitempty, and a key belongs to T when
// decoding a map holding only that key changes or rejects a zero T.
func inspect[T any](name string) (*typeInfo, error) {
	typ := reflect.TypeFor[T]()
	if typ.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: %s is a %s: declare message types as structs", ErrBadType, typ, typ.Kind())
	}
	for _, key := range []string{keyName, keyTimestamp} {
		probe := msgp.AppendMapHeader(nil, 1)
		probe = msgp.AppendString(probe, key)
		probe = msgp.AppendString(probe, "x")
		var v T
		if err := msgpack.Unmarshal(probe, &v); err != nil || !reflect.ValueOf(&v).Elem().IsZero() {
			return nil, fmt.Errorf("%w: %s has a field with the reserved key %q: rename it (the publisher sets %q and %q itself)", ErrBadType, typ, key, keyName, keyTimestamp)
		}
	}
	var zero T
	b, err := msgpack.Marshal(&zero)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadType, typ, err)
	}
	n, rest, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s encodes as a msgpack %s, not a map", ErrBadType, typ, msgp.NextType(b))
	}
	info := &typeInfo{typ: typ, name: name, index: make(map[string]int)}
	for range n {
		key, after, err := msgp.ReadMapKeyZC(rest)
		if err != nil {
			return nil, fmt.Errorf("%w: %s encodes a key that is not a string", ErrBadType, typ)
		}
		if rest, err = msgp.Skip(after); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadType, typ, err)
		}
		if _, dup := info.index[string(key)]; !dup {
			info.index[string(key)] = len(info.mandatory)
			info.mandatory = append(info.mandatory, string(key))
		}
	}
	return info, nil
}

// TypedPublisher publishes values of a registered message type T. It is
// safe for concurrent use.
type TypedPublisher[T any] struct {
	p    *Publisher
	info *typeInfo

	mu   sync.Mutex // guards the buffers below
	val  T          // the value being encoded, so that encoding does not allocate
	enc  bytes.Buffer
	encr *msgpack.Encoder
	out  []byte
}

// NewTypedPublisher opens a Publisher on c for messages of type T.
// Errors: ErrNotRegistered when T has no name, and those of NewPublisher.
func NewTypedPublisher[T any](c *Connection, opts ...PublishOption) (*TypedPublisher[T], error) {
	info, err := lookup[T]()
	if err != nil {
		return nil, err
	}
	p, err := NewPublisher(c, opts...)
	if err != nil {
		return nil, err
	}
	tp := &TypedPublisher[T]{p: p, info: info}
	tp.encr = msgpack.NewEncoder(&tp.enc)
	tp.encr.UseCompactInts(true) // integers in their smallest form, as Python packs them
	return tp, nil
}

// Publish publishes v on topic as a msgpack map of its fields plus "name",
// T's registered name, and "timestamp", the current time. Errors:
// ErrClosed, ErrTopicTooLong, an encoding error for field values msgpack
// cannot represent (or ErrBadType if v does not encode as a map), and
// socket errors.
func (tp *TypedPublisher[T]) Publish(topic string, v T) error {
	return tp.PublishAt(topic, v, time.Now())
}

// PublishAt is Publish with the message's "timestamp" set to at, such as
// the time a sensor took a reading. The timestamp is sent as float64
// seconds since the Unix epoch, precise to the microsecond for present
// times. Errors are Publish's.
func (tp *TypedPublisher[T]) PublishAt(topic string, v T, at time.Time) error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if err := tp.encode(v, at); err != nil {
		tp.p.stats.errors.Add(1)
		return fmt.Errorf("mcl: encode %q message for topic %q: %w", tp.info.name, topic, err)
	}
	return tp.p.PublishRaw(topic, tp.out)
}

// encode leaves in tp.out the map of v's fields followed by name and
// timestamp. tp.mu is held.
func (tp *TypedPublisher[T]) encode(v T, at time.Time) error {
	tp.val = v
	tp.enc.Reset()
	err := tp.encr.Encode(&tp.val)
	var zero T
	tp.val = zero // keep no references to the caller's data
	if err != nil {
		return err
	}
	b := tp.enc.Bytes()
	n, fields, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return fmt.Errorf("%w: %s encodes as a msgpack %s, not a map", ErrBadType, tp.info.typ, msgp.NextType(b))
	}
	tp.out = msgp.AppendMapHeader(tp.out[:0], n+2)
	tp.out = append(tp.out, fields...)
	tp.out = msgp.AppendString(tp.out, keyName)
	tp.out = msgp.AppendString(tp.out, tp.info.name)
	tp.out = msgp.AppendString(tp.out, keyTimestamp)
	tp.out = msgp.AppendFloat64(tp.out, float64(at.Unix())+float64(at.Nanosecond())/1e9)
	return nil
}

// LocalAddr is the address and port the publisher sends from.
func (tp *TypedPublisher[T]) LocalAddr() netip.AddrPort { return tp.p.LocalAddr() }

// Stats returns the underlying Publisher's counters.
func (tp *TypedPublisher[T]) Stats() PublisherStats { return tp.p.Stats() }

// Close closes the socket; later publishes return ErrClosed. It is safe to
// call more than once.
func (tp *TypedPublisher[T]) Close() error { return tp.p.Close() }

// TypedMessage is a received message of type T.
//
// The *TypedMessage passed to a handler or returned by Next is reused, as
// a *Message is: it is valid until the handler returns or the next call to
// Next. Copy Value (and Clone Message) to keep them longer.
type TypedMessage[T any] struct {
	Value T // the message's fields, decoded
	// Timestamp is the message's "timestamp" (the publisher's clock when it
	// published, unless PublishAt chose another time), to the microsecond;
	// zero when the message has none or it is not a number.
	Timestamp time.Time
	Message   *Message // topic, raw payload, sender and reception time
}

// TypedStats counts what a TypedSubscriber received and why it dropped
// messages. Each message the underlying Subscriber delivers is counted
// once: delivered, or in one of the drop counters.
type TypedStats struct {
	Delivered    uint64 // values decoded and handed to the handler or Next
	NotTyped     uint64 // payloads that are not a map with a string "name" (ErrNotTyped)
	WrongName    uint64 // typed messages of another name (ErrWrongName)
	MissingField uint64 // messages lacking a mandatory field (ErrMissingField)
	DecodeErrors uint64 // messages whose fields do not decode into T
	// LastDrop says why the latest dropped message was dropped, naming its
	// topic and the name or field at fault; nil when none was.
	LastDrop error
	// Subscriber holds the underlying Subscriber's counters: datagrams,
	// malformed frames, queue overflows, handler panics.
	Subscriber SubscriberStats
}

// dropKind is why a message was dropped.
type dropKind uint8

const (
	keep dropKind = iota
	notMap
	badMap
	noName
	nameNotString
	wrongName
	missingField
	decodeError
)

// lastDrop describes the latest drop, so that Stats can build LastDrop
// while the receiving path does not allocate.
type lastDrop struct {
	kind   dropKind
	topic  string
	detail string // missing key, or payload type
	name   []byte // received name, at most maxName bytes of it
	err    error  // decoder error
}

// maxName bounds the bytes of a wrong name kept for LastDrop.
const maxName = 64

// TypedSubscriber receives messages of a registered type T. A message of
// another name, one that is not a typed message, one lacking a mandatory
// field, or one whose fields do not decode into T is dropped and counted
// in Stats, which keeps the reason for the latest.
type TypedSubscriber[T any] struct {
	sub     *Subscriber
	ready   chan struct{} // closed once sub is set
	info    *typeInfo
	handler func(*TypedMessage[T])

	// Used by one goroutine at a time: the callback's, or Next's caller.
	cur  TypedMessage[T]
	seen []uint64 // bit i: mandatory key i was present
	rd   bytes.Reader
	dec  *msgpack.Decoder

	delivered, notTyped, wrongName, missingField, decodeErrors atomic.Uint64

	lastMu sync.Mutex
	last   lastDrop
}

// SubscribeTyped calls handler, on a goroutine of the subscriber's, for
// every message of type T received on c's group whose topic passes the
// filter (see Topics); other messages are dropped and counted in Stats.
// The *TypedMessage is valid until handler returns. Errors:
// ErrNotRegistered when T has no name, and those of Subscribe.
func SubscribeTyped[T any](c *Connection, handler func(m *TypedMessage[T]), opts ...SubscribeOption) (*TypedSubscriber[T], error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: nil handler: use SubscribeTypedSync to pull messages instead", ErrBadOption)
	}
	return subscribeTyped(c, handler, opts)
}

// SubscribeTypedSync returns a TypedSubscriber from which messages of type
// T are pulled with Next or Messages. Errors: ErrNotRegistered when T has
// no name, and those of SubscribeSync.
func SubscribeTypedSync[T any](c *Connection, opts ...SubscribeOption) (*TypedSubscriber[T], error) {
	return subscribeTyped[T](c, nil, opts)
}

func subscribeTyped[T any](c *Connection, handler func(*TypedMessage[T]), opts []SubscribeOption) (*TypedSubscriber[T], error) {
	info, err := lookup[T]()
	if err != nil {
		return nil, err
	}
	s := &TypedSubscriber[T]{
		ready:   make(chan struct{}),
		info:    info,
		handler: handler,
		seen:    make([]uint64, (len(info.mandatory)+63)/64),
	}
	s.dec = msgpack.NewDecoder(&s.rd)
	var sub *Subscriber
	if handler == nil {
		sub, err = SubscribeSync(c, opts...)
	} else {
		sub, err = Subscribe(c, func(m *Message) {
			<-s.ready // the handler may use s.sub, as in Close
			if s.accept(m) {
				s.handler(&s.cur)
			}
		}, opts...)
	}
	if err != nil {
		return nil, err
	}
	s.sub = sub
	close(s.ready)
	return s, nil
}

// Next waits for the next message of type T of a SubscribeTypedSync
// subscriber and returns it, dropping and counting other messages. The
// message is valid until the next call to Next; Next is not safe for
// concurrent use. Errors: ErrClosed once the subscriber is closed, the
// context's error, and ErrBadOption on a subscriber that has a handler.
func (s *TypedSubscriber[T]) Next(ctx context.Context) (*TypedMessage[T], error) {
	if s.handler != nil {
		return nil, fmt.Errorf("%w: Next on a TypedSubscriber with a handler", ErrBadOption)
	}
	for {
		m, err := s.sub.Next(ctx)
		if err != nil {
			return nil, err
		}
		if s.accept(m) {
			return &s.cur, nil
		}
	}
}

// Messages returns an iterator over the messages of type T of a
// SubscribeTypedSync subscriber, which ends when ctx is done or the
// subscriber is closed. Each message is valid until the next iteration.
func (s *TypedSubscriber[T]) Messages(ctx context.Context) iter.Seq[*TypedMessage[T]] {
	return func(yield func(*TypedMessage[T]) bool) {
		for {
			m, err := s.Next(ctx)
			if err != nil || !yield(m) {
				return
			}
		}
	}
}

// Close closes the underlying Subscriber, as Subscriber.Close does: it may
// be called from the handler, and more than once.
func (s *TypedSubscriber[T]) Close() error { return s.sub.Close() }

// Stats returns the subscriber's counters and the reason for the latest
// drop.
func (s *TypedSubscriber[T]) Stats() TypedStats {
	st := TypedStats{
		Delivered:    s.delivered.Load(),
		NotTyped:     s.notTyped.Load(),
		WrongName:    s.wrongName.Load(),
		MissingField: s.missingField.Load(),
		DecodeErrors: s.decodeErrors.Load(),
		Subscriber:   s.sub.Stats(),
	}
	s.lastMu.Lock()
	st.LastDrop = s.dropError(&s.last)
	s.lastMu.Unlock()
	return st
}

func (s *TypedSubscriber[T]) dropError(d *lastDrop) error {
	want := s.info.name
	switch d.kind {
	case notMap:
		return fmt.Errorf("%w: topic %q: payload is a msgpack %s, not a map", ErrNotTyped, d.topic, d.detail)
	case badMap:
		return fmt.Errorf("%w: topic %q: malformed map", ErrNotTyped, d.topic)
	case noName:
		return fmt.Errorf("%w: topic %q: map has no %q", ErrNotTyped, d.topic, keyName)
	case nameNotString:
		return fmt.Errorf("%w: topic %q: %q is a msgpack %s, not a string", ErrNotTyped, d.topic, keyName, d.detail)
	case wrongName:
		return fmt.Errorf("%w: topic %q: message name %q, want %q", ErrWrongName, d.topic, d.name, want)
	case missingField:
		return fmt.Errorf("%w: topic %q: %q message has no %q", ErrMissingField, d.topic, want, d.detail)
	case decodeError:
		return fmt.Errorf("mcl: topic %q: decode %q message into %s: %w", d.topic, want, s.info.typ, d.err)
	}
	return nil
}

// accept checks m and decodes it into s.cur, or counts and records why it
// was dropped.
func (s *TypedSubscriber[T]) accept(m *Message) bool {
	ts, kind, detail, name := s.check(m.Payload)
	var err error
	if kind == keep {
		var zero T
		s.cur.Value = zero // omitted fields must not keep an earlier message's values
		s.rd.Reset(m.Payload)
		s.dec.ResetReader(&s.rd)
		if err = s.dec.Decode(&s.cur.Value); err == nil {
			s.cur.Timestamp, s.cur.Message = ts, m
			s.delivered.Add(1)
			return true
		}
		kind = decodeError
	}
	switch kind {
	case notMap, badMap, noName, nameNotString:
		s.notTyped.Add(1)
	case wrongName:
		s.wrongName.Add(1)
	case missingField:
		s.missingField.Add(1)
	case decodeError:
		s.decodeErrors.Add(1)
	}
	if len(name) > maxName {
		name = name[:maxName]
	}
	s.lastMu.Lock()
	s.last.kind, s.last.topic, s.last.detail, s.last.err = kind, m.Topic, detail, err
	s.last.name = append(s.last.name[:0], name...)
	s.lastMu.Unlock()
	return false
}

// check walks the payload's map without decoding it: every read is checked
// against the bytes left, so no header can make it loop or allocate beyond
// the payload. It returns the message's timestamp, or why to drop it with
// a detail (the payload's type, or the missing key) or the received name.
func (s *TypedSubscriber[T]) check(p []byte) (ts time.Time, kind dropKind, detail string, name []byte) {
	n, rest, err := msgp.ReadMapHeaderBytes(p)
	if err != nil {
		return ts, notMap, msgp.NextType(p).String(), nil
	}
	clear(s.seen)
	named := false
	for range n {
		key, after, err := msgp.ReadMapKeyZC(rest)
		if err != nil {
			if after, err = msgp.Skip(rest); err != nil { // a key that is not a string
				return ts, badMap, "", nil
			}
			key = nil
		}
		rest = after
		switch string(key) {
		case keyName:
			v, after, err := msgp.ReadMapKeyZC(rest) // str or bin, as Python 2 and 3 pack names
			if err != nil {
				return ts, nameNotString, msgp.NextType(rest).String(), nil
			}
			if !named || string(name) == s.info.name {
				name, named = v, true // a second, different name counts as wrong
			}
			rest = after
			continue
		case keyTimestamp:
			ts = timestamp(rest)
		default:
			if i, ok := s.info.index[string(key)]; ok {
				s.seen[i/64] |= 1 << (i % 64)
			}
		}
		if rest, err = msgp.Skip(rest); err != nil {
			return ts, badMap, "", nil
		}
	}
	switch {
	case !named:
		return ts, noName, "", nil
	case string(name) != s.info.name:
		return ts, wrongName, "", name
	}
	for i, key := range s.info.mandatory {
		if s.seen[i/64]&(1<<(i%64)) == 0 {
			return ts, missingField, key, nil
		}
	}
	return ts, keep, "", nil
}

// timestamp reads a "timestamp" value, float or integer seconds since the
// Unix epoch, rounded to the microsecond; zero for anything else.
func timestamp(b []byte) time.Time {
	var f float64
	switch msgp.NextType(b) {
	case msgp.Float64Type, msgp.Float32Type:
		f, _, _ = msgp.ReadFloat64Bytes(b)
	case msgp.IntType:
		i, _, _ := msgp.ReadInt64Bytes(b)
		f = float64(i)
	case msgp.UintType:
		u, _, _ := msgp.ReadUint64Bytes(b)
		f = float64(u)
	default:
		return time.Time{}
	}
	if math.IsNaN(f) || math.Abs(f) > 9e12 { // beyond what int64 microseconds hold
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(f * 1e6)))
}
