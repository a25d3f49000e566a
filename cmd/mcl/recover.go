package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/recording"
)

func newRecoverCmd() *cobra.Command {
	var (
		output      string
		force       bool
		compression string
	)
	c := &cobra.Command{
		Use:   "recover FILE [-o OUT.mcap] [--force]",
		Short: "Rewrite a recording cut off by a crash into a complete, indexed file",
		Long: `recover rewrites a recording whose recorder was killed (kill -9, power
loss, a full disk) - a file without summary section, maybe ending inside a
record - into a complete MCAP file with a summary and indexes that every
MCAP reader opens, as "mcap recover" does. Every intact message before the
damage is copied with its channel (topic, message encoding, metadata: group,
sender, topic_base64) and schema, keeping its log time, publish time,
sequence number and bytes, in the same order; metadata records are copied.
The output is chunked and zstd compressed (--compression).

OUT defaults to FILE with ".recovered.mcap" in place of ".mcap". It is
written to a temporary file next to OUT and renamed into place when
complete; recover refuses to replace an existing OUT unless --force. FILE
is never modified. A FILE that is already complete is copied as is, and
recover says there was nothing to recover.

recover prints on standard error how many messages it recovered and the
offset of the damage. Exit status 0 when OUT was written (even if FILE was
damaged), 1 when FILE is not MCAP or cannot be read, 2 on bad usage.`,
		Example: `  mcl recover rec.mcap                 # writes rec.recovered.mcap
  mcl recover rec.mcap -o fixed.mcap --force`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("recover takes one FILE, got %d (see mcl recover --help)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch compression {
			case "zstd", "lz4", "none":
			default:
				return usagef("--compression %q: use zstd, lz4 or none", compression)
			}
			in := args[0]
			if err := checkInputFiles([]string{in}); err != nil {
				return err
			}
			out := output
			if out == "" {
				out = recording.RecoverPath(in)
			}
			if err := checkOutputFile(in, out, force); err != nil {
				return err
			}
			res, err := recording.Recover(in, out, recording.RecoverOptions{Compression: compression, Force: force})
			if errors.Is(err, recording.ErrOutputExists) {
				return usagef("output %s exists: use --force to replace it", out)
			}
			if err != nil {
				return err
			}
			w := cmd.ErrOrStderr()
			switch {
			case res.Complete:
				fmt.Fprintf(w, "mcl: %s is complete: nothing to recover; copied its %d messages to %s\n", in, res.Messages, out)
			case res.Damage != nil:
				fmt.Fprintf(w, "mcl: %v\n", res.Damage)
				fmt.Fprintf(w, "mcl: recovered %d messages, all those before the damage at offset %d, into %s\n", res.Messages, res.DamageOffset, out)
			default:
				fmt.Fprintf(w, "mcl: %s: data section intact, summary missing or damaged\n", in)
				fmt.Fprintf(w, "mcl: recovered %d messages (all of them) into %s\n", res.Messages, out)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&output, "output", "o", "", "file to write (default: FILE with .recovered.mcap in place of .mcap)")
	f.BoolVar(&force, "force", false, "replace the output file if it exists")
	f.StringVar(&compression, "compression", "zstd", "compression of the output's chunks: zstd, lz4 or none")
	c.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"mcap"}, cobra.ShellCompDirectiveFilterFileExt
	}
	return c
}
