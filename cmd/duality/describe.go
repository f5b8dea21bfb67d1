package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

func (c *cli) describeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe APP",
		Short: "Show an app's topology, as text or as a Mermaid flowchart",
		Long: `describe shows the topology of the app APP (its app id) as the app last
started with it: its sub-topologies with their steps, the topics they read
and write, internal topics (repartition, changelog), stores and windows.
Every app publishes these descriptions when it starts, to the compacted
topic "APP-topology" of its log, so that this command, which does not
link the app, can show them. --format mermaid gives a Mermaid flowchart,
which GitHub draws in a ` + "```mermaid" + ` block.

An embedded data directory is open in one process at a time: describe
reads it while the app is stopped.`,
		Args: cobra.ExactArgs(1),
	}
	format := cmd.Flags().StringP("format", "f", "text", "text (Kafka Streams' layout) or mermaid (a flowchart)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key := map[string]string{"text": topology.DescriptionText, "mermaid": topology.DescriptionMermaid}[*format]
		if key == "" {
			return usagef("--format %q: use text or mermaid", *format)
		}
		app := args[0]
		if err := broker.ValidateTopicName(app); err != nil {
			return usagef("app id %q: %v", app, err)
		}
		return c.withBroker(cmd.Context(), existing, func(b broker.Broker) error {
			topic := topology.TopologyTopic(app)
			recs, err := broker.ReadAll(cmd.Context(), b, topic)
			if errors.Is(err, broker.ErrUnknownTopic) {
				return fmt.Errorf("app %s has published no topology: topic %s does not exist (is %s the app id? apps publish their topology when they start)", app, topic, app)
			}
			if err != nil {
				return err
			}
			var desc []byte
			for _, r := range recs {
				if string(r.Key) == key {
					desc = r.Value // the newest wins
				}
			}
			if desc == nil {
				return fmt.Errorf("app %s has published no %s description in topic %s", app, *format, topic)
			}
			_, err = fmt.Fprint(c.stdout, strings.TrimRight(string(desc), "\n")+"\n")
			return err
		})
	}
	return cmd
}
