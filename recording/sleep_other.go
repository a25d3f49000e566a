//go:build !linux

package recording

import "time"

func sleepPrecise(d time.Duration) { time.Sleep(d) }
