package main

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mcl-go/mcl/recording"
)

// completeRecordings completes the file arguments of the commands that
// read recordings with .mcap files and directories (`mcl completion`
// writes the shell's script).
func completeRecordings(c *cobra.Command) {
	c.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"mcap"}, cobra.ShellCompDirectiveFilterFileExt
	}
	c.RegisterFlagCompletionFunc("topic", completeTopics)
}

// completeTopics completes --topic with the topics of the recordings
// named on the command line so far.
func completeTopics(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	seen := map[string]bool{}
	for _, name := range args {
		f, err := recording.Open(name)
		if err != nil {
			continue
		}
		info, _ := f.Info()
		for _, ch := range info.Channels {
			t := ch.Topic
			if raw, err := base64.StdEncoding.DecodeString(ch.Metadata[recording.MetaTopicBase64]); err == nil && len(raw) > 0 {
				t = string(raw)
			}
			if strings.HasPrefix(t, prefix) {
				seen[t] = true
			}
		}
		f.Close()
	}
	topics := make([]string, 0, len(seen))
	for t := range seen {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return topics, cobra.ShellCompDirectiveNoFileComp
}
