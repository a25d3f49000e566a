// Package wire encodes, decodes and reassembles the UDP datagrams of the
// mcl protocol, byte for byte as the original Python 2 library sends them.
//
// # Whole messages
//
// A message is a topic and a payload. The payload is any msgpack value.
// When the msgpack 2-array [topic, payload] is at most [MTU] bytes long it
// is sent as one datagram holding exactly that array:
//
//	92                 fixarray, 2 elements
//	a1 61              topic "a"
//	a2 68 69           payload "hi"
//
// # Fragments
//
// A larger message is split. The payload alone is msgpack-encoded into
// bytes data; N = len(data)/MTU + 1 pieces of MTU bytes are cut from it,
// the last one shorter (and empty when len(data) is an exact multiple of
// MTU: the Python sender does that, so we do too). Piece n (1-based) goes
// out as the 4-array [topic, n, N, piece]:
//
//	94                 fixarray, 4 elements
//	a1 74              topic "t"
//	01 03              n = 1, N = 3
//	da ea 60 ...       piece: str16 header, 60000 bytes
//
// # Python 2 strings
//
// Python 2 packs every string, text or bytes, as a msgpack "raw" str with
// the old spec's headers only: fixstr up to 31 bytes, then str16 (0xda),
// then str32 (0xdb); never str8 (0xd9) and never bin. [AppendStr] writes
// exactly that, so a Python 2 node and this package produce identical
// datagrams. Integers n and N use the smallest unsigned form (fixint,
// 0xcc, 0xcd, 0xce, 0xcf), as msgpack-python does.
//
// Decoding is liberal: a topic may be str, bin or nil (the Python default
// topic None, decoded as an empty topic), a piece may be str or bin (a
// Python 3 peer sends bin), and string contents are bytes, never checked
// for UTF-8.
//
// # Receiving
//
// Read datagrams into a buffer of [MaxDatagram] bytes. Call [Topic] to
// filter on the topic before anything else is looked at, then [Decode].
// Whole messages are ready; feed fragments to a [Reassembler], which holds
// incomplete messages within [Limits] and returns each payload once its
// last piece arrives. What it holds grows with the piece bytes actually
// received, never with the N a fragment claims, so a short datagram
// claiming a huge message costs no more than its piece:
//
//	f, err := wire.Decode(buf[:n])
//	if err != nil { /* drop: errors.Is(err, wire.ErrMalformed) */ }
//	payload := f.Payload
//	if f.IsFragment() {
//		payload, err = r.Add(from, f, time.Now())
//		if payload == nil { /* stored, or dropped: err says why */ }
//	}
//
// Decode and Topic never allocate: the Frame they return points into the
// datagram, so copy what must outlive the buffer.
//
// # Sending
//
// Check the topic with [CheckTopic] once. Then, with the payload already
// msgpack-encoded:
//
//	if wire.Fits(topic, payload) {
//		dgram = wire.AppendMessage(dgram[:0], topic, payload)
//		// send dgram
//	} else {
//		count := wire.FragmentCount(len(payload))
//		for n := 1; n <= count; n++ {
//			dgram = wire.AppendFragment(dgram[:0], topic, n, count, wire.Piece(payload, n))
//			// send dgram
//		}
//	}
package wire
