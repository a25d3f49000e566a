package mcl_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
)

func TestNewConnectionDefaults(t *testing.T) {
	c, err := mcl.NewConnection(mcl.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Group().String(), "[ff15::c73d:cf41:ea8e:b0a0]:26000"; got != want {
		t.Errorf("Group() = %s, want %s", got, want)
	}
	if c.Interface() != "" {
		t.Errorf("Interface() = %q, want none", c.Interface())
	}
	c4, err := mcl.NewConnection("239.192.0.1", mcl.Port(1024))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c4.String(), "239.192.0.1:1024"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestNewConnectionErrors(t *testing.T) {
	for _, tc := range []struct {
		group string
		opts  []mcl.Option
		want  error
		hint  string
	}{
		{"fd00::1", nil, mcl.ErrNotMulticast, "ff00::/8"},
		{"10.1.2.3", nil, mcl.ErrNotMulticast, "224.0.0.0/4"},
		{"not-an-address", nil, mcl.ErrNotMulticast, "not an IP address"},
		{"", nil, mcl.ErrNotMulticast, "not an IP address"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Port(1023)}, mcl.ErrBadPort, "1024..65535"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Port(65536)}, mcl.ErrBadPort, "1024..65535"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Port(0)}, mcl.ErrBadPort, "1024..65535"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Interface("no-such-if0")}, mcl.ErrNoInterface, "ip link"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Hops(256)}, mcl.ErrBadOption, "0..255"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Hops(-1)}, mcl.ErrBadOption, "0..255"},
		{mcl.DefaultGroup, []mcl.Option{mcl.ReadBuffer(-1)}, mcl.ErrBadOption, "read buffer"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Spin(-time.Microsecond)}, mcl.ErrBadOption, "0 (never) to 1ms"},
		{mcl.DefaultGroup, []mcl.Option{mcl.Spin(2 * time.Millisecond)}, mcl.ErrBadOption, "0 (never) to 1ms"},
	} {
		_, err := mcl.NewConnection(tc.group, tc.opts...)
		if !errors.Is(err, tc.want) {
			t.Errorf("NewConnection(%q) error = %v, want %v", tc.group, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("NewConnection(%q) error %q does not say %q", tc.group, err, tc.hint)
		}
	}
}

func TestSubscribeOptionErrors(t *testing.T) {
	c, err := mcl.NewConnection(mcl.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []mcl.SubscribeOption{mcl.QueueLimits(0, 10), mcl.QueueLimits(10, 0), mcl.OnOverflow(7)} {
		if _, err := mcl.SubscribeSync(c, opt); !errors.Is(err, mcl.ErrBadOption) {
			t.Errorf("SubscribeSync with a bad option: error = %v, want ErrBadOption", err)
		}
	}
	if _, err := mcl.Subscribe(c, nil); !errors.Is(err, mcl.ErrBadOption) {
		t.Errorf("Subscribe(nil handler) error = %v, want ErrBadOption", err)
	}
	if _, err := mcl.SubscribeChan(c, nil); !errors.Is(err, mcl.ErrBadOption) {
		t.Errorf("SubscribeChan(nil) error = %v, want ErrBadOption", err)
	}
}

// TestInterfaceEmpty: Interface("") keeps the kernel's choice, as the
// command line's --iface "" does.
func TestInterfaceEmpty(t *testing.T) {
	c, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Interface(""))
	if err != nil || c.Interface() != "" {
		t.Fatalf("Interface(\"\"): %v, interface %q", err, c.Interface())
	}
}
