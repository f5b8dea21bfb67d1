package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// mirrorPollWait is how long one Poll of the source waits for records.
const mirrorPollWait = time.Second

// Defaults of a mirror's transactions: each carries at most this many
// records or bytes of keys and values (one Poll of the source).
const (
	defaultMirrorBatchRecords = 5000
	defaultMirrorBatchBytes   = 4 << 20
)

// mirrorOptions are the flags of mirror.
type mirrorOptions struct {
	toDir, toBrokers string
	all              bool
	pattern          string
	prefix           string
	group            string
	follow           bool
	batchRecords     int
	batchBytes       int
	replication      int16
	groups           []string
	quiet            bool
}

func (c *cli) mirrorCommand() *cobra.Command {
	var o mirrorOptions
	cmd := &cobra.Command{
		Use:   "mirror [TOPIC...]",
		Short: "Copy topics to another log (embedded or Kafka), exactly once and resumable",
		Long: `mirror copies topics of the log --dir or --brokers names (the source) to
the log --to-dir or --to-brokers names (the destination): an embedded data
directory to a Kafka cluster and back, or between two of a kind. It is
Kafka's MirrorMaker for Duality's logs, and the way an app's data moves
from the embedded log to a cluster.

  duality --dir /var/lib/orders/log mirror --all --to-brokers kafka-1:9092
  duality --brokers a:9092 mirror orders payments --to-dir ./copy
  duality --brokers a:9092 mirror --pattern 'orders-.*' --to-brokers b:9092 --follow

Topics: the TOPICs named, those whose whole name matches --pattern (a Go
regular expression), or --all of them but Kafka's internal ones (names
starting with "__"). Each is copied to the topic of the same name on the
destination, or --prefix and its name. A destination topic that does not
exist is created with the source topic's partition count and cleanup
settings (cleanup policy, retention, retention bytes, tombstone
retention) and, on Kafka, --replication-factor; one that exists must have
at least as many partitions, or mirror refuses to start (before it
creates or copies anything).

Every record keeps its partition, key, value, timestamp and headers, in
order per partition; a tombstone (null value) stays one, and a compacted
topic is copied as it is now, its compacted-away records gone. Offsets
are the destination's own. Records the source deleted (retention,
DeleteRecords) before the mirror copied them are skipped, and mirror says
which offsets on standard error.

Exactly once, resumable: records go to the destination in transactions
(an embedded log's atomic commit, a Kafka transaction) that also store,
as the committed offsets of consumer group --progress-group on the
destination's topics, the next source offset to copy of each partition
(an offset of the source, not of the destination: ignore that group's
lag). A mirror stopped at any instant, killed or interrupted, and started
again with the same --progress-group resumes there: every record is
copied once. Starting a mirror fences a running one of the same
--progress-group (its next transaction fails), so give mirrors that share
a destination their own. Deleting a destination topic deletes its
progress: the next mirror copies it again.

Without --follow mirror stops at the source partitions' ends as of its
start. With --follow (the source on Kafka) it keeps copying new records
until interrupted (Ctrl-C, SIGTERM), which ends it with exit code 0 and
nothing half copied. Topics are chosen when it starts: restart it to add
topics created since.

--groups copies the committed offsets of consumer groups (an app's group
is its app id) of the mirrored topics as they are when mirror starts,
translated to the destination's offsets: the offset of the first record
copied at or after the group's source offset, or the destination
partition's end when the mirror copied none. It is done at the end of the
run that copies the records at those offsets, so stop the app (or let it
catch up) first; an offset whose records an earlier run copied cannot be
translated, and mirror says so. Without --groups an app moved to the
destination has no committed offsets there and reads its input from the
start again.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return c.mirror(cmd.Context(), args, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.toDir, "to-dir", "", "destination: an embedded data directory (created if it does not exist)")
	f.StringVar(&o.toBrokers, "to-brokers", "", "destination: Kafka brokers, host:port,...")
	f.BoolVar(&o.all, "all", false, `mirror every topic of the source but the internal ones ("__" names)`)
	f.StringVar(&o.pattern, "pattern", "", "mirror the topics whose whole name matches this regular expression")
	f.StringVar(&o.prefix, "prefix", "", "name destination topics with this prefix before the source topic's name")
	f.StringVar(&o.group, "progress-group", "duality-mirror", "group on the destination that stores the mirror's progress (and its transactional id)")
	f.BoolVarP(&o.follow, "follow", "F", false, "keep copying new records until interrupted (the source on Kafka)")
	f.IntVar(&o.batchRecords, "batch-records", defaultMirrorBatchRecords, "most records one transaction copies")
	f.IntVar(&o.batchBytes, "batch-bytes", defaultMirrorBatchBytes, "most key and value bytes one transaction copies (at least one record)")
	f.StringSliceVar(&o.groups, "groups", nil, "consumer groups whose committed offsets are copied too, translated to the destination's offsets (comma-separated)")
	f.Int16Var(&o.replication, "replication-factor", -1, "replication factor of the topics created on a Kafka destination; -1: the cluster's default")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not report the count of records copied on standard error")
	return cmd
}

// checkMirrorOptions refuses a command line that cannot mirror anything,
// before either log is opened.
func (c *cli) checkMirrorOptions(topics []string, o mirrorOptions) error {
	switch {
	case o.toDir != "" && o.toBrokers != "":
		return usagef("--to-dir and --to-brokers exclude each other: give one destination")
	case o.toDir == "" && o.toBrokers == "":
		return usagef("mirror needs a destination: --to-dir DIR (an embedded data directory) or --to-brokers host:port,... (a Kafka cluster)")
	}
	ways := 0
	for _, set := range []bool{len(topics) > 0, o.all, o.pattern != ""} {
		if set {
			ways++
		}
	}
	switch {
	case ways == 0:
		return usagef("mirror needs topics: name them, or give --pattern REGEXP or --all")
	case ways > 1:
		return usagef("name topics, --pattern or --all: one of them")
	case o.follow && c.dir != "":
		return usagef("--follow needs --brokers: an embedded data directory is open in one process at a time, so nothing can write to it while duality reads it")
	case o.group == "":
		return usagef("--progress-group: must not be empty")
	case o.batchRecords < 1:
		return usagef("--batch-records %d: must be at least 1", o.batchRecords)
	case o.batchBytes < 1:
		return usagef("--batch-bytes %d: must be at least 1", o.batchBytes)
	case o.replication == 0 || o.replication < -1:
		return usagef("--replication-factor %d: give -1 (the cluster's default) or at least 1", o.replication)
	case slices.Contains(o.groups, ""):
		return usagef("--groups: empty group name")
	case slices.Contains(o.groups, o.group):
		return usagef("--groups: %s is the mirror's own --progress-group", o.group)
	}
	for _, t := range topics {
		if err := broker.ValidateTopicName(t); err != nil {
			return &usageError{err}
		}
		if err := broker.ValidateTopicName(o.prefix + t); err != nil {
			return usagef("--prefix %q: %v", o.prefix, err)
		}
	}
	if o.pattern != "" {
		if _, err := regexp.Compile(o.pattern); err != nil {
			return usagef("--pattern %q: %v", o.pattern, err)
		}
	}
	if o.toBrokers != "" {
		if _, err := parseBrokers(o.toBrokers); err != nil {
			return usagef("--to-%s", strings.TrimPrefix(err.Error(), "--"))
		}
		if c.timeout <= 0 {
			return usagef("--timeout %v: must be positive", c.timeout)
		}
	}
	if o.toDir != "" && c.dir != "" && samePath(o.toDir, c.dir) {
		return usagef("--to-dir %s is the source directory: mirror copies between two logs", o.toDir)
	}
	if o.toBrokers != "" && c.brokers != "" && o.prefix == "" {
		from, err1 := parseBrokers(c.brokers)
		to, err2 := parseBrokers(o.toBrokers)
		if err1 == nil && err2 == nil && slices.Equal(slices.Sorted(slices.Values(from)), slices.Sorted(slices.Values(to))) {
			return usagef("--to-brokers is the source cluster: give --prefix to copy topics within a cluster")
		}
	}
	return nil
}

// samePath reports whether a and b name one directory.
func samePath(a, b string) bool {
	abs := func(p string) string {
		if q, err := filepath.Abs(p); err == nil {
			p = q
		}
		if q, err := filepath.EvalSymlinks(p); err == nil {
			p = q
		}
		return filepath.Clean(p)
	}
	return abs(a) == abs(b)
}

// openDestination opens the embedded directory of --to-dir, which may be
// created, or connects to the cluster of --to-brokers.
func (c *cli) openDestination(ctx context.Context, o mirrorOptions) (broker.Broker, error) {
	if o.toDir != "" {
		b, err := openDir(o.toDir, mayCreate)
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		return b, nil
	}
	seeds, err := parseBrokers(o.toBrokers)
	if err != nil {
		return nil, err // checkMirrorOptions parsed them
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	b, err := kafka.New(cctx, seeds, kafka.WithReplicationFactor(o.replication))
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return b, nil
}

func (c *cli) mirror(ctx context.Context, topics []string, o mirrorOptions) error {
	if err := c.checkMirrorOptions(topics, o); err != nil {
		return err
	}
	return c.withBroker(ctx, existing, func(src broker.Broker) (err error) {
		m := &mirror{c: c, o: o, src: src, copied: map[string]int{}}
		// The topics first: a mistake in them leaves the destination
		// alone (a new --to-dir is not created).
		infos, err := m.selectTopics(ctx, topics)
		if err != nil {
			return err
		}
		if m.dst, err = c.openDestination(ctx, o); err != nil {
			return err
		}
		defer func() {
			if cerr := m.dst.Close(); cerr != nil && !errors.Is(cerr, broker.ErrClosed) {
				err = errors.Join(err, fmt.Errorf("close the destination: %w", cerr))
			}
		}()
		return m.run(ctx, infos)
	})
}

// mirrorPartition is one source partition being copied.
type mirrorPartition struct {
	src, dst broker.TopicPartition
	// next is the next source offset to copy; committed the one the
	// destination stores.
	next, committed int64
	// end is where a mirror without --follow stops.
	end int64
	// translate maps the groups of --groups whose offset in the
	// partition is not translated yet to that offset.
	translate map[string]int64
}

// mirror copies the partitions of its topics from src to dst.
type mirror struct {
	c        *cli
	o        mirrorOptions
	src, dst broker.Broker
	p        progress
	parts    map[broker.TopicPartition]*mirrorPartition // by source partition
	copied   map[string]int                             // records copied, by source topic
	total    int
	// translated are the destination offsets of the groups of --groups.
	translated map[string]map[broker.TopicPartition]int64
}

// note tells the user something about the work on standard error.
func (m *mirror) note(format string, args ...any) {
	m.p.Note(fmt.Sprintf(format, args...))
}

// run mirrors the source topics infos.
func (m *mirror) run(ctx context.Context, infos []broker.TopicInfo) error {
	created, err := m.prepareDestination(ctx, infos)
	if err != nil {
		return err
	}
	// The committer first: opening it aborts what a killed mirror of the
	// same group left open, whose offsets would otherwise hold back
	// FetchOffsets until the destination aborts it.
	committer, err := m.dst.NewCommitter(ctx, m.o.group)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer committer.Close()
	if err := m.plan(ctx, infos); err != nil {
		return err
	}
	work := progressWork{what: fmt.Sprintf("mirror %d topics", len(infos))}
	if len(infos) == 1 {
		work.what = "mirror " + infos[0].Name
	}
	if !m.o.follow {
		for _, mp := range m.parts {
			work.total += max(mp.end-mp.next, 0) // an upper bound: gaps hold no record
		}
	}
	m.p = m.c.newProgress(m.o.quiet, false, work)
	for _, name := range created {
		info := infos[slices.IndexFunc(infos, func(i broker.TopicInfo) bool { return m.o.prefix+i.Name == name })]
		m.note("created topic %s on the destination: %s, cleanup %s", name, partitions(int(info.Config.Partitions)), info.Config.Cleanup)
	}
	m.reportSkipped(ctx)
	if err := m.readGroups(ctx); err != nil {
		m.p.Fail()
		return err
	}
	if err := m.copy(ctx, committer); err != nil {
		m.p.Fail()
		if errors.Is(err, broker.ErrFenced) {
			err = fmt.Errorf("%w: another mirror with --progress-group %s started on the destination; give mirrors that share a destination their own --progress-group", err, m.o.group)
		}
		return fmt.Errorf("%w (%s copied; run mirror again to resume)", err, records(m.total))
	}
	if err := m.writeGroups(context.WithoutCancel(ctx)); err != nil {
		m.p.Fail()
		return err
	}
	m.p.Done(m.summary())
	return nil
}

// readGroups reads the committed offsets of the groups of --groups in the
// mirrored partitions, to translate as the records at them are copied.
// An offset below the progress a partition had when the mirror started
// was copied by an earlier run: it cannot be translated. One below the
// source's start translates to the first record copied, as an app whose
// offset is gone is reset to the start.
func (m *mirror) readGroups(ctx context.Context) error {
	if len(m.o.groups) == 0 {
		return nil
	}
	tps := m.sortedParts()
	m.translated = map[string]map[broker.TopicPartition]int64{}
	for _, g := range m.o.groups {
		offs, err := m.src.FetchOffsets(ctx, g, tps)
		if err != nil {
			return fmt.Errorf("read the offsets of group %s: %w", g, err)
		}
		if len(offs) == 0 {
			m.note("group %s has no committed offsets in the mirrored topics: nothing to copy", g)
			continue
		}
		m.translated[g] = map[broker.TopicPartition]int64{}
		for _, tp := range tps {
			at, ok := offs[tp]
			if !ok {
				continue
			}
			mp := m.parts[tp]
			if mp.committed >= 0 && at < mp.committed {
				m.note("group %s: offset %d of %s was copied by an earlier run: not translated (its records are on the destination, from an offset mirror no longer knows)",
					g, at, tpText(tp))
				continue
			}
			if mp.translate == nil {
				mp.translate = map[string]int64{}
			}
			mp.translate[g] = at
		}
	}
	return nil
}

// translateCopied translates the group offsets that the records of
// batch, just committed with their destination offsets set, reach:
// from[i] is the source offset of batch[i].
func (m *mirror) translateCopied(batch []broker.Record, from []int64) {
	for i := range batch {
		mp := m.parts[m.srcOf(batch[i])]
		for g, at := range mp.translate {
			if from[i] >= at {
				m.translated[g][mp.dst] = batch[i].Offset
				delete(mp.translate, g)
			}
		}
	}
}

// srcOf returns the source partition a record for the destination was
// copied from.
func (m *mirror) srcOf(r broker.Record) broker.TopicPartition {
	return broker.TopicPartition{Topic: strings.TrimPrefix(r.Topic, m.o.prefix), Partition: r.Partition}
}

// writeGroups translates the group offsets no copied record reached to
// the destination partitions' ends, and commits the groups' offsets to
// the destination.
func (m *mirror) writeGroups(ctx context.Context) error {
	for _, tp := range m.sortedParts() {
		mp := m.parts[tp]
		if len(mp.translate) == 0 {
			continue
		}
		offs, err := m.dst.ListOffsets(ctx, mp.dst.Topic, mp.dst.Partition)
		if err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		for g := range mp.translate {
			m.translated[g][mp.dst] = offs.Latest
		}
		clear(mp.translate)
	}
	for _, g := range slices.Sorted(maps.Keys(m.translated)) {
		offs := m.translated[g]
		if err := m.dst.CommitOffsets(ctx, g, offs); err != nil {
			return fmt.Errorf("destination: commit the offsets of group %s: %w (the records are copied: run mirror again with --groups %s once the group has no members on the destination)", g, err, g)
		}
		m.note("copied the offsets of group %s: %s", g, partitions(len(offs)))
	}
	return nil
}

// selectTopics returns the source topics to mirror, sorted by name.
func (m *mirror) selectTopics(ctx context.Context, names []string) ([]broker.TopicInfo, error) {
	if len(names) > 0 {
		var infos []broker.TopicInfo
		for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
			info, err := m.src.DescribeTopic(ctx, name)
			if err != nil {
				return nil, err
			}
			infos = append(infos, info)
		}
		return infos, nil
	}
	all, err := m.src.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	var re *regexp.Regexp
	if m.o.pattern != "" {
		re = regexp.MustCompile("^(?:" + m.o.pattern + ")$") // checked by checkMirrorOptions
	}
	var infos []broker.TopicInfo
	for _, info := range all {
		if strings.HasPrefix(info.Name, "__") || re != nil && !re.MatchString(info.Name) {
			continue
		}
		if err := broker.ValidateTopicName(m.o.prefix + info.Name); err != nil {
			return nil, usagef("--prefix %q: %v", m.o.prefix, err)
		}
		infos = append(infos, info)
	}
	if len(infos) == 0 {
		if re != nil {
			return nil, fmt.Errorf("no topic of the source matches --pattern %q ('duality topics list' lists them)", m.o.pattern)
		}
		return nil, errors.New("the source has no topic to mirror")
	}
	return infos, nil
}

// prepareDestination checks every destination topic, then creates the
// missing ones: a destination with too few partitions for one topic
// leaves the destination as it was. It returns the topics created.
func (m *mirror) prepareDestination(ctx context.Context, infos []broker.TopicInfo) ([]string, error) {
	var missing []broker.TopicInfo
	for _, info := range infos {
		name := m.o.prefix + info.Name
		d, err := m.dst.DescribeTopic(ctx, name)
		switch {
		case errors.Is(err, broker.ErrUnknownTopic):
			missing = append(missing, info)
		case err != nil:
			return nil, fmt.Errorf("destination: %w", err)
		case d.Config.Partitions < info.Config.Partitions:
			return nil, fmt.Errorf("destination topic %s has %d partitions, fewer than the %d of source topic %s: records keep their partitions, so it needs at least as many (delete it, or give --prefix to mirror to new topics)",
				name, d.Config.Partitions, info.Config.Partitions, info.Name)
		}
	}
	var created []string
	for _, info := range missing {
		name := m.o.prefix + info.Name
		err := m.dst.CreateTopic(ctx, name, info.Config)
		if errors.Is(err, broker.ErrTopicExists) {
			// Created meanwhile by someone else: check it as above.
			d, derr := m.dst.DescribeTopic(ctx, name)
			if derr == nil && d.Config.Partitions < info.Config.Partitions {
				return created, fmt.Errorf("destination topic %s was created meanwhile with %d partitions, fewer than the %d of source topic %s",
					name, d.Config.Partitions, info.Config.Partitions, info.Name)
			}
			err = derr
		} else if err == nil {
			created = append(created, name)
		}
		if err != nil {
			return created, fmt.Errorf("destination: create topic %s: %w", name, err)
		}
	}
	return created, nil
}

// plan reads the mirror's progress from the destination and the
// source's offsets: where each partition resumes, and, without --follow,
// where it ends.
func (m *mirror) plan(ctx context.Context, infos []broker.TopicInfo) error {
	m.parts = map[broker.TopicPartition]*mirrorPartition{}
	var dsts []broker.TopicPartition
	for _, info := range infos {
		for p := range info.Config.Partitions {
			mp := &mirrorPartition{
				src:       broker.TopicPartition{Topic: info.Name, Partition: p},
				dst:       broker.TopicPartition{Topic: m.o.prefix + info.Name, Partition: p},
				committed: -1,
			}
			m.parts[mp.src] = mp
			dsts = append(dsts, mp.dst)
		}
	}
	done, err := m.dst.FetchOffsets(ctx, m.o.group, dsts)
	if err != nil {
		return fmt.Errorf("destination: read the progress of group %s: %w", m.o.group, err)
	}
	for _, mp := range m.parts {
		offs, err := m.src.ListOffsets(ctx, mp.src.Topic, mp.src.Partition)
		if err != nil {
			return err
		}
		mp.next = offs.Earliest
		if at, ok := done[mp.dst]; ok {
			if at > offs.Latest {
				return fmt.Errorf("group %s on the destination says %s was copied up to offset %d, but the source partition ends at %d: is it another source? Give another --progress-group to copy it anew",
					m.o.group, tpText(mp.src), at, offs.Latest)
			}
			mp.next, mp.committed = at, at
		}
		mp.end = offs.Latest
	}
	return nil
}

// reportSkipped moves the partitions whose next offset the source
// deleted to their earliest offset, and says so.
func (m *mirror) reportSkipped(ctx context.Context) {
	for _, tp := range m.sortedParts() {
		mp := m.parts[tp]
		offs, err := m.src.ListOffsets(ctx, tp.Topic, tp.Partition)
		if err != nil || mp.next >= offs.Earliest {
			continue // an error shows when the partition is read
		}
		m.skip(mp, offs.Earliest)
	}
}

// skip moves mp from its next offset to earliest, the source's first
// offset now, and says what was lost.
func (m *mirror) skip(mp *mirrorPartition, earliest int64) {
	m.note("%s: offsets %d to %d were deleted from the source (retention, compaction or DeleteRecords) before they were copied: skipped",
		tpText(mp.src), mp.next, earliest-1)
	mp.next = earliest
}

func (m *mirror) sortedParts() []broker.TopicPartition {
	return slices.SortedFunc(maps.Keys(m.parts), func(x, y broker.TopicPartition) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return int(x.Partition - y.Partition)
	})
}

// copy polls the source and commits what it read, with the progress, to
// the destination, one transaction a Poll.
func (m *mirror) copy(ctx context.Context, committer broker.Committer) error {
	active := map[broker.TopicPartition]int64{}
	for tp, mp := range m.parts {
		if m.o.follow || mp.next < mp.end {
			active[tp] = mp.next
		}
	}
	if len(active) == 0 {
		return m.commitProgress(ctx, committer)
	}
	if err := m.copyActive(ctx, committer, active); err != nil {
		return err
	}
	if m.o.follow && ctx.Err() != nil {
		return nil // interrupted: what is not committed is copied by the next run
	}
	return m.commitProgress(ctx, committer)
}

// copyActive copies the partitions of active, from the offsets it maps
// them to, until each is at its end (or, with --follow, until ctx ends).
func (m *mirror) copyActive(ctx context.Context, committer broker.Committer, active map[broker.TopicPartition]int64) error {
	cons, err := m.src.NewConsumer(broker.ConsumerOptions{MaxRecords: m.o.batchRecords, MaxBytes: m.o.batchBytes})
	if err != nil {
		return err
	}
	defer cons.Close()
	cons.Assign(active)
	finish := func(tp broker.TopicPartition) {
		if !m.o.follow && m.parts[tp].next >= m.parts[tp].end {
			delete(active, tp)
			cons.Unassign(tp)
		}
	}
	var batch []broker.Record
	var from []int64 // the source offsets of batch
	for len(active) > 0 {
		polled, err := cons.Poll(ctx, mirrorPollWait)
		var oor *broker.OffsetOutOfRangeError
		switch {
		case err != nil && m.o.follow && ctx.Err() != nil:
			return nil // interrupted: the way a follow ends
		case errors.As(err, &oor):
			tp := broker.TopicPartition{Topic: oor.Topic, Partition: oor.Partition}
			mp, ok := m.parts[tp]
			if !ok {
				return err
			}
			offs, lerr := m.src.ListOffsets(ctx, tp.Topic, tp.Partition)
			if lerr != nil {
				return lerr
			}
			if mp.next >= offs.Earliest {
				return err // not a deletion: out of range past the end
			}
			m.skip(mp, offs.Earliest)
			cons.Assign(map[broker.TopicPartition]int64{tp: mp.next})
			finish(tp)
			continue
		case err != nil:
			return err
		}
		batch, from = batch[:0], from[:0]
		for _, r := range polled.Records {
			tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			mp, ok := m.parts[tp]
			if !ok || r.Offset < mp.next || !m.o.follow && r.Offset >= mp.end {
				continue
			}
			batch = append(batch, broker.Record{
				Topic: mp.dst.Topic, Partition: mp.dst.Partition,
				Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp,
			})
			from = append(from, r.Offset)
			mp.next = r.Offset + 1
		}
		for tp, at := range polled.Ends {
			if mp, ok := m.parts[tp]; ok {
				if !m.o.follow {
					at = min(at, mp.end) // records past the end stay for the next run
				}
				mp.next = max(mp.next, at) // past transaction markers and compacted gaps
			}
		}
		if err := m.commit(ctx, committer, batch); err != nil {
			if m.o.follow && ctx.Err() != nil {
				return nil // interrupted; the transaction committed or left nothing
			}
			return err
		}
		if m.translated != nil {
			m.translateCopied(batch, from)
		}
		for tp := range active {
			finish(tp)
		}
	}
	return nil
}

// commitProgress commits the progress of partitions that moved without
// records to copy since the last commit (skipped offsets), so that a
// later run does not report them again.
func (m *mirror) commitProgress(ctx context.Context, committer broker.Committer) error {
	return m.commit(ctx, committer, nil)
}

// commit writes batch and the progress of every partition that moved
// since the last commit, in one transaction.
func (m *mirror) commit(ctx context.Context, committer broker.Committer, batch []broker.Record) error {
	offsets := map[broker.TopicPartition]int64{}
	for _, mp := range m.parts {
		if mp.next != mp.committed {
			offsets[mp.dst] = mp.next
		}
	}
	if len(batch) == 0 && len(offsets) == 0 {
		return nil
	}
	if err := committer.Commit(ctx, broker.CommitRequest{Records: batch, Group: m.o.group, Offsets: offsets}); err != nil {
		for _, mp := range m.parts {
			mp.next = mp.committed // what the destination holds
		}
		return fmt.Errorf("destination: %w", err)
	}
	for _, mp := range m.parts {
		mp.committed = mp.next
	}
	for i := range batch {
		m.copied[strings.TrimPrefix(batch[i].Topic, m.o.prefix)]++
	}
	m.total += len(batch)
	m.p.Add(len(batch))
	return nil
}

// summary says what was copied: "mirrored 3 records: orders 2, payments 1".
func (m *mirror) summary() string {
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(m.copied)) {
		parts = append(parts, fmt.Sprintf("%s %d", topic, m.copied[topic]))
	}
	if len(parts) == 0 {
		return "mirrored 0 records: the destination was up to date"
	}
	return fmt.Sprintf("mirrored %s: %s", records(m.total), strings.Join(parts, ", "))
}

// partitions says "1 partition" or "n partitions".
func partitions(n int) string {
	if n == 1 {
		return "1 partition"
	}
	return fmt.Sprintf("%d partitions", n)
}
