package mcl

import "errors"

// Errors returned by this package, wrapped with details: test them with
// errors.Is.
var (
	// ErrClosed is returned by operations on a closed Publisher or Subscriber.
	ErrClosed = errors.New("mcl: use of closed publisher or subscriber")
	// ErrBadPort reports a port outside 1024..65535.
	ErrBadPort = errors.New("mcl: invalid port")
	// ErrNotMulticast reports a group that is not an IPv6 or IPv4 multicast address.
	ErrNotMulticast = errors.New("mcl: not a multicast group")
	// ErrNoInterface reports a network interface name the host does not have.
	ErrNoInterface = errors.New("mcl: no such network interface")
	// ErrBadOption reports an option value out of range.
	ErrBadOption = errors.New("mcl: invalid option")
	// ErrBadPayload reports raw bytes that are not exactly one msgpack value.
	ErrBadPayload = errors.New("mcl: payload is not one msgpack value")
	// ErrTopicTooLong reports a topic longer than wire.MaxTopic bytes.
	ErrTopicTooLong = errors.New("mcl: topic too long")
)
