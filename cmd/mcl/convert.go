package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/internal/msgjson"
	"github.com/mcl-go/mcl/mcap"
)

func newConvertCmd() *cobra.Command {
	var (
		encoding string
		output   string
		force    bool
	)
	c := &cobra.Command{
		Use:   "convert FILE -o OUT.mcap [--encoding json] [--force]",
		Short: "Rewrite a recording as JSON with schemas, for Foxglove and other viewers",
		Long: `convert writes a copy of a recording whose messages are JSON instead of
msgpack, with a JSON schema per topic, which Foxglove plots as it is (as
"mcl record --encoding json" records). convert reads the input twice: first
to learn each topic's schema from all its messages, then to write them, so
each topic has one "jsonschema" Schema record, named after the topic, that
all its messages are valid against. Payloads that are not maps are wrapped
as {"data": ...}; binary data is a base64 string (contentEncoding base64);
msgpack timestamps are {"sec", "nsec"}; the rest is rendered as by
"mcl sub" (see docs/cli.md). JSON loses what JSON cannot say: binary versus
text, integer versus float for whole numbers once read back, non-string map
keys (written as strings), ext types other than timestamps, duplicate keys
(readers keep the last). Payloads already in JSON are read as JSON.

Channels keep their topic and metadata (group, sender) with message encoding
"json"; messages keep their log time, publish time and sequence number, in
the same order; metadata records are copied. The output is chunked and zstd
compressed.

The output is written to a temporary file next to OUT and renamed into place
when complete. convert refuses to replace an existing OUT unless --force.

A recording damaged by a crash of the recorder is converted up to the damage:
OUT is a complete file holding every intact message, and the damage is
reported with exit status 1. So is a payload that cannot be rendered, which
is skipped with a warning.`,
		Example: `  mcl convert rec.mcap -o rec.json.mcap
  mcl convert rec.mcap --encoding json -o /tmp/view.mcap --force`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("convert takes one FILE, got %d (see mcl convert --help)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if encoding != "json" {
				return usagef("--encoding %q: only json is supported", encoding)
			}
			if output == "" {
				return usagef("--output (-o) is required, e.g. -o out.mcap")
			}
			in := args[0]
			if err := checkInputFiles([]string{in}); err != nil {
				return err
			}
			if err := checkOutputFile(in, output, force); err != nil {
				return err
			}
			return convertFile(cmd, in, output, force)
		},
	}
	f := c.Flags()
	f.StringVarP(&encoding, "encoding", "e", "json", "message encoding of the output; only json is supported")
	f.StringVarP(&output, "output", "o", "", "file to write (required), e.g. rec.json.mcap")
	f.BoolVar(&force, "force", false, "replace the output file if it exists")
	completeRecordings(c)
	return c
}

func convertFile(cmd *cobra.Command, in, output string, force bool) (err error) {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	r, err := mcap.NewReader(src, st.Size())
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}

	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w, err := mcap.NewWriter(tmp, mcap.WriterOptions{Chunked: true, Compression: mcap.CompressionZstd})
	if err != nil {
		return err
	}
	writeErr := func(err error) error { return fmt.Errorf("write %s: %w", output, err) }

	// Metadata first: the reader's pass over metadata skips chunks. Damage
	// stops it early; the pass over the messages reports it.
	mds, _ := r.Metadata()
	for _, md := range mds {
		if err := w.AddMetadata(md.Name, md.Metadata); err != nil {
			return writeErr(err)
		}
	}

	ctx := cmd.Context()
	schemas, err := topicSchemas(ctx, r)
	if err != nil {
		return err
	}
	schemaIDs := map[string]uint16{}
	channels := map[uint16]uint16{} // input ID → output ID
	var (
		data             []byte
		damage           error
		written, skipped uint64
	)
	for mv, err := range r.Messages(mcap.ReadOptions{}) {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			damage = fmt.Errorf("%s: %w", in, err)
			break
		}
		ch := mv.Channel
		id, ok := channels[ch.ID]
		if !ok {
			if ch.MessageEncoding != "msgpack" && ch.MessageEncoding != "json" {
				return fmt.Errorf("%s: channel %d (topic %s): message encoding %q: convert reads msgpack and json",
					in, ch.ID, topicLabel(ch.Topic), ch.MessageEncoding)
			}
			sid, ok := schemaIDs[ch.Topic]
			if !ok {
				s := schemas[ch.Topic]
				if s == nil { // the input changed between the passes
					s = msgjson.NewSchema()
				}
				if sid, err = w.AddSchema(ch.Topic, "jsonschema", s.AppendJSON(nil, ch.Topic)); err != nil {
					return writeErr(err)
				}
				schemaIDs[ch.Topic] = sid
			}
			if id, err = w.AddChannel(sid, ch.Topic, "json", ch.Metadata); err != nil {
				return writeErr(err)
			}
			channels[ch.ID] = id
		}
		// Rendered again, the same as in the first pass, which the schema
		// already describes.
		p, perr := payloadMsgpack(ch.MessageEncoding, mv.Message.Data)
		if perr == nil {
			if data, perr = msgjson.ToFoxgloveJSON(data[:0], p, nil); perr != nil {
				perr = fmt.Errorf("payload is not msgpack: %w", perr)
			}
		}
		if perr != nil {
			skipped++
			fmt.Fprintf(cmd.ErrOrStderr(), "mcl: warning: %s: offset %d: message on topic %s, sequence %d: %v: skipped\n",
				in, mv.Offset, topicLabel(ch.Topic), mv.Message.Sequence, perr)
			continue
		}
		m := mv.Message
		m.Channel, m.Data = id, data
		if err := w.WriteMessage(m); err != nil {
			return writeErr(err)
		}
		written++
	}
	if err := w.Close(); err != nil {
		return writeErr(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return writeErr(err)
	}
	if err := tmp.Sync(); err != nil {
		return writeErr(err)
	}
	if err := tmp.Close(); err != nil {
		return writeErr(err)
	}
	if err := installOutput(tmp.Name(), output, force); err != nil {
		return err
	}
	tmp = nil
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d messages on %d channels, encoding json, %d schemas\n", output, written, len(channels), len(schemaIDs))

	var errs []error
	if damage != nil {
		errs = append(errs, damage, fmt.Errorf("%s holds the %d messages before the damage", output, written))
	}
	if skipped > 0 {
		errs = append(errs, fmt.Errorf("skipped %d messages whose payload could not be rendered", skipped))
	}
	return reportErrors(cmd.ErrOrStderr(), errs)
}

// topicSchemas reads r's messages and returns each topic's JSON schema,
// learnt from all of them, so that the output has one per topic. Damage
// ends the reading early and payloads that do not render are passed over:
// the pass that writes reports both. Error: the context's.
func topicSchemas(ctx context.Context, r *mcap.Reader) (map[string]*msgjson.Schema, error) {
	schemas := map[string]*msgjson.Schema{}
	var data []byte
	for mv, err := range r.Messages(mcap.ReadOptions{}) {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if err != nil {
			break
		}
		s := schemas[mv.Channel.Topic]
		if s == nil {
			s = msgjson.NewSchema()
			schemas[mv.Channel.Topic] = s
		}
		if p, err := payloadMsgpack(mv.Channel.MessageEncoding, mv.Message.Data); err == nil {
			data, _ = msgjson.ToFoxgloveJSON(data[:0], p, s)
		}
	}
	return schemas, nil
}

// payloadMsgpack returns a recorded payload as msgpack: as it is, or
// packed from JSON (a file written by an older mcl convert, or by this one).
func payloadMsgpack(encoding string, payload []byte) ([]byte, error) {
	if encoding != "json" {
		return payload, nil
	}
	p, err := msgjson.FromJSON(nil, payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	return p, nil
}

// installOutput moves the finished temporary file to name: replacing it with
// force, else only if name still does not exist.
func installOutput(tmp, name string, force bool) error {
	if force {
		return os.Rename(tmp, name)
	}
	// A hard link fails if name appeared meanwhile; file systems without
	// links get a check and a rename.
	err := os.Link(tmp, name)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, os.ErrExist) {
		return usagef("output %s exists: use --force to replace it", name)
	}
	if _, serr := os.Lstat(name); serr == nil {
		return usagef("output %s exists: use --force to replace it", name)
	}
	return os.Rename(tmp, name)
}
