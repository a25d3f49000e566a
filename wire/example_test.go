package wire_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/wire"
)

// A whole message: the datagram is the 2-array [topic, payload].
func ExampleAppendMessage() {
	payload := wire.AppendStr(nil, []byte("hi")) // msgpack of the payload "hi"
	d := wire.AppendMessage(nil, "a", payload)
	fmt.Printf("% x\n", d)

	f, _ := wire.Decode(d)
	fmt.Printf("topic %q, payload % x, fragment %v\n", f.Topic, f.Payload, f.IsFragment())
	// Output:
	// 92 a1 61 a2 68 69
	// topic "a", payload a2 68 69, fragment false
}

// A large payload goes out as fragments [topic, n, N, piece] and comes
// back whole from a Reassembler.
func ExampleReassembler() {
	payload := wire.AppendStr(nil, make([]byte, 150000)) // msgpack str, 150005 bytes
	count := wire.FragmentCount(len(payload))

	var datagrams [][]byte
	for n := 1; n <= count; n++ {
		datagrams = append(datagrams, wire.AppendFragment(nil, "big", n, count, wire.Piece(payload, n)))
	}

	r := wire.NewReassembler(wire.DefaultLimits())
	from := netip.MustParseAddrPort("[fe80::1]:26000")
	for _, d := range datagrams {
		f, err := wire.Decode(d)
		if err != nil {
			continue
		}
		fmt.Printf("fragment %d/%d: %d-byte piece\n", f.Index, f.Count, len(f.Payload))
		if whole, err := r.Add(from, f, time.Now()); whole != nil {
			fmt.Printf("reassembled %d bytes, err %v\n", len(whole), err)
		}
	}
	// Output:
	// fragment 1/3: 60000-byte piece
	// fragment 2/3: 60000-byte piece
	// fragment 3/3: 30005-byte piece
	// reassembled 150005 bytes, err <nil>
}
