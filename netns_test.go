package mcl_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

// TestSocketPerNamespace: Subscribers of one group and port share a
// socket only within a network namespace. One opened from a thread in
// another namespace gets that namespace's traffic, and only it, as a
// Subscriber on another host would.
func TestSocketPerNamespace(t *testing.T) {
	c := conn(t, "ff15::c73d:cf41:ea8e:b0e1")
	ns, err := sandbox.NewNamespace()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	here, err := mcl.SubscribeSync(c, mcl.Topics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	var there *mcl.Subscriber
	var pubThere *mcl.Publisher
	if err := ns.Do(func() error {
		var err error
		if there, err = mcl.SubscribeSync(c, mcl.Topics("t")); err != nil {
			return err
		}
		pubThere, err = mcl.NewPublisher(c)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer there.Close()
	defer pubThere.Close()
	pubHere := publisher(t, c)

	next := func(s *mcl.Subscriber) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := m.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Each side's next message is its own namespace's: had the two shared
	// a socket, or a namespace, one of them would get the other's first.
	if err := pubHere.Publish("t", "here 1"); err != nil {
		t.Fatal(err)
	}
	if got := next(here); got != "here 1" {
		t.Fatalf("here got %q", got)
	}
	if err := pubThere.Publish("t", "there 1"); err != nil {
		t.Fatal(err)
	}
	if got := next(there); got != "there 1" {
		t.Fatalf("there got %q, want its own namespace's message", got)
	}
	if err := pubHere.Publish("t", "here 2"); err != nil {
		t.Fatal(err)
	}
	if got := next(here); got != "here 2" {
		t.Fatalf("here got %q after here 1, want here 2", got)
	}
}
