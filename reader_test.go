package mcl_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
)

// TestSlowCallbackKeepsReading blocks a callback and expects the socket to
// be read meanwhile: the backup reader queues what arrives, and the
// callback sees every message, in order, once released.
func TestSlowCallbackKeepsReading(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	release := make(chan struct{})
	got := make(chan int, 100)
	s, err := mcl.Subscribe(c, func(m *mcl.Message) {
		<-release
		var v int
		m.Decode(&v)
		got <- v
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := publisher(t, c)
	for i := range 50 {
		pub.Publish("t", i)
	}
	eventually(t, "the backup to read while the callback is blocked", func() bool { return s.Stats().Datagrams == 50 })
	close(release)
	for want := range 50 {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("got %d, want %d", v, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of 50 messages", want)
		}
	}
}

// TestBackupWakesAfterIdle lets the backup reader park (the consumer waits
// long on an idle socket), then stops consuming and publishes: the backup
// must wake and read without the consumer.
func TestBackupWakesAfterIdle(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	s, err := mcl.SubscribeSync(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on an idle socket: %v, want context.DeadlineExceeded", err)
	}
	pub := publisher(t, c)
	for i := range 10 {
		pub.Publish("t", i)
	}
	eventually(t, "the backup to read with no consumer", func() bool { return s.Stats().Datagrams == 10 })
	for want := range 10 {
		m, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var v int
		if err := m.Decode(&v); err != nil || v != want {
			t.Fatalf("got %d (%v), want %d", v, err, want)
		}
	}
}

// TestNextInterrupted checks that a Next blocked on the socket returns on
// its context's cancellation and deadline, and on Close, and that a later
// Next with a fresh context still receives.
func TestNextInterrupted(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	s, err := mcl.SubscribeSync(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func(ctx context.Context) <-chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := s.Next(ctx)
			errc <- err
		}()
		return errc
	}
	wait := func(what string, errc <-chan error, want error) {
		t.Helper()
		select {
		case err := <-errc:
			if !errors.Is(err, want) {
				t.Fatalf("%s: Next returned %v, want %v", what, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Next did not return", what)
		}
	}

	// Cancelled most likely while Next waits in the socket; before that
	// it must return all the same.
	ctx, cancel := context.WithCancel(context.Background())
	errc := next(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	wait("cancel", errc, context.Canceled)

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	wait("deadline", next(ctx), context.DeadlineExceeded)

	errc = next(context.Background())
	publisher(t, c).Publish("t", 7)
	wait("publish", errc, nil)

	errc = next(context.Background())
	time.AfterFunc(20*time.Millisecond, func() { s.Close() })
	wait("Close", errc, mcl.ErrClosed)
}
