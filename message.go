package mcl

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Message is one received message.
//
// A Message passed to a callback, or returned by Next or Messages, is
// reused: it and its Payload are valid until the callback returns or the
// next call to Next. Call Clone to keep one longer. Messages sent on a
// channel by SubscribeChan are clones, owned by the receiver.
type Message struct {
	Topic    string         // the topic it was published on ("" for the seed's None)
	Payload  []byte         // the payload's msgpack encoding, byte-exact as sent
	Sender   netip.AddrPort // address and port of the publishing socket
	Received time.Time      // when the datagram (the last fragment) was read
}

// Decode unpacks the payload into v, a pointer, with
// github.com/vmihailenco/msgpack/v5's rules (msgpack str decodes into
// string or []byte, maps into map[string]any or structs by `msgpack` tags).
// Payloads were checked against their own length before delivery, so no
// header can make Decode allocate more than a small multiple of the
// payload's size. Errors
// come from the decoder, wrapped with the topic.
func (m *Message) Decode(v any) error {
	if err := msgpack.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("mcl: decode payload of topic %q: %w", m.Topic, err)
	}
	return nil
}

// Clone returns a copy of m that owns its Payload.
func (m *Message) Clone() *Message {
	c := *m
	c.Payload = bytes.Clone(m.Payload)
	return &c
}
