package mcl_test

import (
	"errors"
	"testing"

	"github.com/mcl-go/mcl"
)

// TestTopicPatterns subscribes with names and patterns together: each
// subscriber gets exactly the topics its list matches, in order.
func TestTopicPatterns(t *testing.T) {
	c := conn(t, mcl.DefaultGroup)
	cams := syncSubscriber(t, c, mcl.Topics("camera/*"))
	fronts := syncSubscriber(t, c, mcl.Topics("gps", "**/front"))
	all := syncSubscriber(t, c, mcl.Topics("**"))
	pub := publisher(t, c)
	topics := []string{"camera/front", "camera/back", "camera/front/raw", "gps", "lidar/front", "imu"}
	for i, tp := range topics {
		if err := pub.Publish(tp, i); err != nil {
			t.Fatal(err)
		}
	}
	nextInts(t, cams, 0, 1)
	nextInts(t, fronts, 0, 3, 4)
	nextInts(t, all, 0, 1, 2, 3, 4, 5)
	if st := cams.Stats(); st.Filtered != 4 {
		t.Errorf("camera/* filtered %d of 6, want 4", st.Filtered)
	}
	if _, err := mcl.SubscribeSync(c, mcl.Topics("camera/fr*")); !errors.Is(err, mcl.ErrBadOption) {
		t.Fatalf("a partial-segment wildcard: %v, want ErrBadOption", err)
	}
}
