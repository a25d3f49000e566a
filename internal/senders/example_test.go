package senders_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mcl-go/mcl/internal/senders"
)

// A sender's datagrams 0 to 5 arrive with 2 after 3, 4 lost and 3 twice.
func Example() {
	t := senders.New(0)
	from := netip.MustParseAddrPort("192.0.2.1:26000")
	now := time.Unix(1e9, 0)
	const id = 0x5eed
	for _, seq := range []uint64{0, 1, 3, 2, 3, 5} {
		v := t.Observe(id, seq, from, now)
		fmt.Println(seq, v, v.Delivered())
	}
	s := t.Senders(nil)[0]
	fmt.Printf("%+v\n", s.Counts)
	// Output:
	// 0 deliver true
	// 1 deliver true
	// 3 deliver true
	// 2 reordered true
	// 3 duplicate false
	// 5 deliver true
	// {Datagrams:5 Lost:1 Reordered:1 Duplicates:1 Late:0 Jumps:0}
}
