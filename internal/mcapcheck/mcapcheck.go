// Package mcapcheck lets tests check MCAP files with an independent
// reader: the TypeScript reference implementation @mcap/core, driven by
// mcap/testdata/validator/validate.mjs, which also checks JSON channels
// against their JSON schemas with ajv; FoxgloveSchema and ValidJSON make
// the same checks in Go. Its npm packages are not committed:
// `npm ci --prefix mcap/testdata/validator` installs them (scripts/test.sh
// does). Without them a check skips its test, or fails it when
// MCL_REQUIRE_NODE=1, as CI sets.
package mcapcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Output is what the validator reports about a file it accepts.
type Output struct {
	Library          string            `json:"library"`
	Profile          string            `json:"profile"`
	Messages         int               `json:"messages"`
	IndexedMessages  *int              `json:"indexedMessages"`
	Channels         map[string]uint64 `json:"channels"` // messages by topic
	ChannelCount     int               `json:"channelCount"`
	Schemas          int               `json:"schemas"`
	Metadata         int               `json:"metadata"`
	Chunks           int               `json:"chunks"`
	Compression      []string          `json:"compression"`
	MessageStartTime string            `json:"messageStartTime"`
	MessageEndTime   string            `json:"messageEndTime"`
	OrderedSHA256    string            `json:"orderedSha256"`
	// JSONChannels counts the channels of message encoding "json" with a
	// "jsonschema" schema, and JSONMessages their messages, each of which
	// the validator found valid against its schema (with ajv) and the
	// schema one that Foxglove reads.
	JSONChannels int `json:"jsonChannels"`
	JSONMessages int `json:"jsonMessages"`
}

// TB is the part of testing.TB the checks use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
}

// Require skips (or, with MCL_REQUIRE_NODE=1, fails) the test when the
// validator cannot run, and returns its script's path.
func Require(t TB) string {
	t.Helper()
	script, err := find()
	if err == nil {
		_, err = exec.LookPath("node")
	}
	if err != nil {
		if os.Getenv("MCL_REQUIRE_NODE") == "1" {
			t.Fatalf("MCAP validator unavailable (%v): run `npm ci --prefix mcap/testdata/validator`", err)
		}
		t.Skipf("MCAP validator unavailable (%v): run `npm ci --prefix mcap/testdata/validator`", err)
	}
	return script
}

// Run reads file with @mcap/core and returns what it saw, or why it
// rejected the file.
func Run(t TB, file string) (Output, error) {
	t.Helper()
	script := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// --single-threaded: with V8's background threads, node 20 deadlocks
	// now and then at exit after reading a zstd file (the main thread
	// joins a worker that waits for a garbage collection the main thread
	// will never run); one run in five hung here until the timeout.
	cmd := exec.CommandContext(ctx, "node", "--single-threaded", script, file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Output{}, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var out Output
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("validator output %q: %v", stdout.String(), err)
	}
	return out, nil
}

// Validate fails the test when @mcap/core rejects file.
func Validate(t TB, file string) Output {
	t.Helper()
	out, err := Run(t, file)
	if err != nil {
		t.Fatalf("@mcap/core rejects %s: %v", file, err)
	}
	return out
}

// find locates validate.mjs with its installed packages, from the module
// root above the working directory (go test runs in the package's).
func find() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			v := filepath.Join(dir, "mcap", "testdata", "validator")
			if _, err := os.Stat(filepath.Join(v, "node_modules", "@mcap", "core")); err != nil {
				return "", err
			}
			return filepath.Join(v, "validate.mjs"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
