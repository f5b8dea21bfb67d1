package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
)

func (c *cli) topicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics",
		Short: "List, create, describe and delete topics",
		Args:  cobra.ArbitraryArgs,
		RunE:  needSubcommand,
	}
	cmd.AddCommand(c.topicsListCommand(), c.topicsCreateCommand(), c.topicsDescribeCommand(), c.topicsDeleteCommand())
	return cmd
}

// topicJSON is a topic as --output json shows it.
type topicJSON struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Cleanup    string `json:"cleanup_policy"`
	// RetentionMs is -1 for records kept forever.
	RetentionMs int64 `json:"retention_ms"`
	// RetentionBytes is -1 for no size limit.
	RetentionBytes    int64 `json:"retention_bytes"`
	DeleteRetentionMs int64 `json:"delete_retention_ms"`
	// Offsets are filled by describe only.
	Offsets []partitionOffsets `json:"offsets,omitempty"`
}

// partitionOffsets is one partition's range: records live at offsets
// [start, end).
type partitionOffsets struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
}

func newTopicJSON(info broker.TopicInfo) topicJSON {
	cfg := info.Config
	t := topicJSON{
		Name:              info.Name,
		Partitions:        cfg.Partitions,
		Cleanup:           cfg.Cleanup.String(),
		RetentionMs:       cfg.RetentionTime.Milliseconds(),
		RetentionBytes:    cfg.RetentionBytes,
		DeleteRetentionMs: cfg.DeleteRetention.Milliseconds(),
	}
	if cfg.RetentionTime < 0 {
		t.RetentionMs = -1
	}
	if cfg.RetentionBytes <= 0 {
		t.RetentionBytes = -1
	}
	return t
}

func retentionText(ms int64) string {
	if ms < 0 {
		return "forever"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func bytesText(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func (c *cli) topicsListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the topics with their partition counts and cleanup settings",
		Args:  cobra.NoArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			infos, err := b.ListTopics(cmd.Context())
			if err != nil {
				return err
			}
			topics := make([]topicJSON, len(infos))
			for i, info := range infos {
				topics[i] = newTopicJSON(info)
			}
			if *output == "json" {
				return writeJSON(c.stdout, topics)
			}
			w := table(c.stdout)
			fmt.Fprintln(w, "TOPIC\tPARTITIONS\tCLEANUP\tRETENTION\tRETENTION BYTES")
			for _, t := range topics {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", t.Name, t.Partitions, t.Cleanup, retentionText(t.RetentionMs), bytesText(t.RetentionBytes))
			}
			return w.Flush()
		})
	}
	return cmd
}

func (c *cli) topicsCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic (and, with --dir, the data directory if it does not exist)",
		Args:  cobra.ExactArgs(1),
	}
	f := cmd.Flags()
	partitions := f.Int32P("partitions", "p", 1, "number of partitions")
	cleanup := f.String("cleanup", "delete", "cleanup policy: delete, compact or compact,delete")
	retention := f.String("retention", "", "delete records older than this (a duration such as 72h, or forever); default 7 days")
	retentionBytes := f.Int64("retention-bytes", 0, "delete a partition's oldest records beyond this size; 0: no limit")
	deleteRetention := f.Duration("delete-retention", 0, "how long a compacted topic keeps tombstones; default 24h")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg := broker.TopicConfig{Partitions: *partitions, RetentionBytes: *retentionBytes, DeleteRetention: *deleteRetention}
		var err error
		if cfg.Cleanup, err = parseCleanup(*cleanup); err != nil {
			return err
		}
		switch *retention {
		case "":
		case "forever":
			cfg.RetentionTime = -1
		default:
			d, err := time.ParseDuration(*retention)
			if err != nil || d <= 0 {
				return usagef("--retention %q: give a positive duration (such as 72h) or forever", *retention)
			}
			cfg.RetentionTime = d
		}
		if *partitions < 1 {
			return usagef("--partitions %d: a topic has at least 1", *partitions)
		}
		if *deleteRetention < 0 {
			return usagef("--delete-retention %v: must not be negative", *deleteRetention)
		}
		if err := broker.ValidateTopicName(args[0]); err != nil {
			return &usageError{err}
		}
		return c.withBroker(cmd.Context(), mayCreate, func(b broker.Broker) error {
			if err := b.CreateTopic(cmd.Context(), args[0], cfg); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "created topic %s with %d partitions\n", args[0], cfg.Partitions)
			return nil
		})
	}
	return cmd
}

func parseCleanup(s string) (broker.CleanupPolicy, error) {
	switch s {
	case "delete":
		return broker.CleanupDelete, nil
	case "compact":
		return broker.CleanupCompact, nil
	case "compact,delete", "delete,compact":
		return broker.CleanupCompactDelete, nil
	}
	return 0, usagef("--cleanup %q: use delete, compact or compact,delete", s)
}

func (c *cli) topicsDescribeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe TOPIC...",
		Short: "Show topics' configuration and each partition's start and end offsets",
		Args:  cobra.MinimumNArgs(1),
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			var topics []topicJSON
			for _, name := range args {
				t, err := describeTopic(cmd.Context(), b, name)
				if err != nil {
					return err
				}
				topics = append(topics, t)
			}
			if *output == "json" {
				return writeJSON(c.stdout, topics)
			}
			for i, t := range topics {
				if i > 0 {
					fmt.Fprintln(c.stdout)
				}
				if err := writeTopicText(c.stdout, t); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return cmd
}

func describeTopic(ctx context.Context, b broker.Broker, name string) (topicJSON, error) {
	info, err := b.DescribeTopic(ctx, name)
	if err != nil {
		return topicJSON{}, err
	}
	t := newTopicJSON(info)
	for p := range info.Config.Partitions {
		offs, err := b.ListOffsets(ctx, name, p)
		if err != nil {
			return topicJSON{}, err
		}
		t.Offsets = append(t.Offsets, partitionOffsets{Partition: p, Start: offs.Earliest, End: offs.Latest})
	}
	return t, nil
}

func writeTopicText(out io.Writer, t topicJSON) error {
	w := table(out)
	fmt.Fprintf(w, "topic:\t%s\n", t.Name)
	fmt.Fprintf(w, "partitions:\t%d\n", t.Partitions)
	fmt.Fprintf(w, "cleanup.policy:\t%s\n", t.Cleanup)
	fmt.Fprintf(w, "retention:\t%s\n", retentionText(t.RetentionMs))
	fmt.Fprintf(w, "retention.bytes:\t%s\n", bytesText(t.RetentionBytes))
	fmt.Fprintf(w, "delete.retention:\t%s\n", retentionText(t.DeleteRetentionMs))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	w = table(out)
	fmt.Fprintln(w, "PARTITION\tSTART\tEND")
	for _, o := range t.Offsets {
		fmt.Fprintf(w, "%d\t%d\t%d\n", o.Partition, o.Start, o.End)
	}
	return w.Flush()
}

func (c *cli) topicsDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete TOPIC...",
		Short: "Delete topics with their records and the group offsets stored for them",
		Args:  cobra.MinimumNArgs(1),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			// Check them all first: a typo deletes nothing.
			for _, name := range args {
				if _, err := b.DescribeTopic(cmd.Context(), name); err != nil {
					return err
				}
			}
			for _, name := range args {
				if err := b.DeleteTopic(cmd.Context(), name); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "deleted topic %s\n", name)
			}
			return nil
		})
	}
	return cmd
}
