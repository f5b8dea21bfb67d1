package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
)

func (c *cli) groupsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "groups",
		Short: "List consumer groups and show their members, offsets and lag",
		Long: `groups lists consumer groups and describes one: its members, and for
every partition of the topics it consumes, its committed offset, the
partition's end and the lag between them. A Duality app's group is its app
id; its lag is the input it has not processed yet.`,
		Args: cobra.ArbitraryArgs,
		RunE: needSubcommand,
	}
	cmd.AddCommand(c.groupsListCommand(), c.groupsDescribeCommand())
	return cmd
}

// groupAdmin returns b's GroupAdmin.
func groupAdmin(b broker.Broker) (broker.GroupAdmin, error) {
	ga, ok := b.(broker.GroupAdmin)
	if !ok {
		return nil, fmt.Errorf("%T cannot list groups", b)
	}
	return ga, nil
}

func (c *cli) groupsListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups (with members or committed offsets)",
		Args:  cobra.NoArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			ga, err := groupAdmin(b)
			if err != nil {
				return err
			}
			groups, err := ga.ListGroups(cmd.Context())
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, groups)
			}
			for _, g := range groups {
				fmt.Fprintln(c.stdout, g)
			}
			return nil
		})
	}
	return cmd
}

// groupJSON is a described group.
type groupJSON struct {
	Group      string          `json:"group"`
	State      string          `json:"state"`
	Members    []memberJSON    `json:"members"`
	Partitions []groupPartJSON `json:"partitions"`
	Lag        int64           `json:"lag"`
}

type memberJSON struct {
	ID         string   `json:"id"`
	InstanceID string   `json:"instance_id,omitempty"`
	ClientID   string   `json:"client_id,omitempty"`
	Host       string   `json:"host,omitempty"`
	Partitions []string `json:"partitions"`
}

// groupPartJSON is one partition of a group's topics. Committed is -1
// when the group has no offset for it; its lag then counts from the
// partition's start.
type groupPartJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"`
}

func (c *cli) groupsDescribeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members and, per partition, committed offset, end and lag",
		Args:  cobra.ExactArgs(1),
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*output); err != nil {
			return err
		}
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			g, err := describeGroup(cmd.Context(), b, args[0])
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(c.stdout, g)
			}
			return writeGroupText(c, g)
		})
	}
	return cmd
}

func tpText(tp broker.TopicPartition) string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// describeGroup gathers a group's members and the lag of every partition
// of the topics it has offsets in or members read.
func describeGroup(ctx context.Context, b broker.Broker, group string) (groupJSON, error) {
	ga, err := groupAdmin(b)
	if err != nil {
		return groupJSON{}, err
	}
	d, err := ga.DescribeGroup(ctx, group)
	if err != nil {
		return groupJSON{}, err
	}
	g := groupJSON{Group: d.Name, State: d.State, Members: []memberJSON{}, Partitions: []groupPartJSON{}}
	owner := map[broker.TopicPartition]string{}
	topics := map[string]bool{}
	for _, m := range d.Members {
		mj := memberJSON{ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.Host, Partitions: []string{}}
		for _, tp := range m.Partitions {
			mj.Partitions = append(mj.Partitions, tpText(tp))
			owner[tp] = m.ID
			topics[tp.Topic] = true
		}
		g.Members = append(g.Members, mj)
	}
	for tp := range d.Offsets {
		topics[tp.Topic] = true
	}
	for _, topic := range slices.Sorted(maps.Keys(topics)) {
		info, err := b.DescribeTopic(ctx, topic)
		if err != nil {
			return groupJSON{}, fmt.Errorf("group %s reads topic %s: %w", group, topic, err)
		}
		for p := range info.Config.Partitions {
			tp := broker.TopicPartition{Topic: topic, Partition: p}
			offs, err := b.ListOffsets(ctx, topic, p)
			if err != nil {
				return groupJSON{}, err
			}
			committed, ok := d.Offsets[tp]
			from := committed
			if !ok {
				committed = -1
			}
			if !ok || from < offs.Earliest {
				from = offs.Earliest
			}
			lag := max(offs.Latest-from, 0)
			g.Partitions = append(g.Partitions, groupPartJSON{Topic: topic, Partition: p, Committed: committed, End: offs.Latest, Lag: lag, Member: owner[tp]})
			g.Lag += lag
		}
	}
	slices.SortFunc(g.Partitions, func(x, y groupPartJSON) int {
		return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	return g, nil
}

func writeGroupText(c *cli, g groupJSON) error {
	fmt.Fprintf(c.stdout, "group %s: %s, %d members, lag %d\n", g.Group, g.State, len(g.Members), g.Lag)
	if len(g.Members) > 0 {
		fmt.Fprintln(c.stdout)
		w := table(c.stdout)
		fmt.Fprintln(w, "MEMBER\tINSTANCE\tCLIENT\tHOST\tPARTITIONS")
		for _, m := range g.Members {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.ID, dash(m.InstanceID), dash(m.ClientID), dash(m.Host), dash(strings.Join(m.Partitions, ",")))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(c.stdout)
	w := table(c.stdout)
	fmt.Fprintln(w, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	for _, p := range g.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\n", p.Topic, p.Partition, committed, p.End, p.Lag, dash(p.Member))
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
