package mcl_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcl-go/mcl"
)

func ExampleNewConnection() {
	c, err := mcl.NewConnection("239.192.0.1", mcl.Port(26001), mcl.Hops(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c)

	_, err = mcl.NewConnection("10.0.0.1")
	fmt.Println(errors.Is(err, mcl.ErrNotMulticast))
	// Output:
	// 239.192.0.1:26001
	// true
}

// Subscribe with a callback, then publish. (Not run: it needs a network.)
func ExampleSubscribe() {
	conn, err := mcl.NewConnection(mcl.DefaultGroup)
	if err != nil {
		panic(err)
	}
	sub, err := mcl.Subscribe(conn, func(m *mcl.Message) {
		var fix struct {
			Lat float64 `msgpack:"lat"`
			Lon float64 `msgpack:"lon"`
		}
		if err := m.Decode(&fix); err == nil {
			fmt.Println(m.Topic, fix.Lat, fix.Lon)
		}
	}, mcl.Topics("gps"))
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	pub, err := mcl.NewPublisher(conn)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	pub.Publish("gps", map[string]float64{"lat": -33.89, "lon": 151.19})
}

// Pull messages with an iterator. (Not run: it needs a network.)
func ExampleSubscriber_Messages() {
	conn, _ := mcl.NewConnection(mcl.DefaultGroup)
	sub, err := mcl.SubscribeSync(conn, mcl.QueueLimits(100, 1<<20), mcl.OnOverflow(mcl.DropOldest))
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for m := range sub.Messages(ctx) {
		fmt.Printf("%s: %d bytes from %s\n", m.Topic, len(m.Payload), m.Sender)
	}
	fmt.Println(sub.Stats().Delivered, "delivered")
}
