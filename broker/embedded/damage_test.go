package embedded_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

var damageWide = flag.Bool("damage.wide", false, "TestDamageMatrix: flip at every tenth of each file and in 1- and 64-byte runs, not only at its start, middle and end")

// damageKind is a kind of file of a data directory.
type damageKind struct {
	name string
	// files returns the files of the kind to damage (all of them for
	// delete), nil if the directory has none.
	files func(dir string) []string
}

// damageOp is one way of damaging a file.
type damageOp struct {
	name string
	fn   func(name string) (string, error)
}

// TestDamageMatrix damages every kind of file of a data directory in every
// way (flip bytes at the start, middle and end, truncate to half and to
// zero, delete) on two bases, and reopens each damaged copy in a child
// process (see runJobs). Every case must give an error matching
// broker.ErrCorrupt or every acknowledged record, whole, at its offset.
//
// The bases: "killed" holds sstables from a first run closed cleanly, then
// the batches of a second run killed with SIGKILL right after its last
// acknowledgement, while Pebble could not flush (sstable creation
// blocked), so that they live in two write-ahead logs: an older, rotated
// one and the newest. That run syncs the acknowledgement record before
// each acknowledgement (WithAckRecordSync). "killed-idle" is the same with
// the default background record and the kill a second after the last
// acknowledgement (the default record trails the acknowledgements by up to
// 50 ms, which tmpfs fills with about a hundred batches; see
// WithAckRecordSync). "clean" is the killed base reopened and closed:
// everything in sstables, no log needed.
//
// The table of outcomes is logged; -damage.wide adds flip positions and
// sizes.
func TestDamageMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes; skipped under -short")
	}
	killed := filepath.Join(memTempDir(t), "killed")
	st := newCrashState()
	b, err := embedded.Open(killed, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(t.Context(), crashTopic, broker.TopicConfig{Partitions: 3, RetentionTime: -1}))
	for i := range 60 {
		id := fmt.Sprintf("a%d", i)
		recs := batchRecords(crashTopic, int32(i%3), id, 1+i%8)
		require.NoError(t, b.Produce(t.Context(), recs))
		st.batches[id] = ackedBatch{topic: crashTopic, partition: recs[0].Partition, first: recs[0].Offset, n: len(recs)}
	}
	require.NoError(t, b.Close())
	idle := filepath.Join(memTempDir(t), "killed-idle")
	copyDir(t, killed, idle)
	idleSt := newCrashState()
	maps.Copy(idleSt.batches, st.batches)
	runTwoLogChild(t, killed, "twolog-strict", st)
	runTwoLogChild(t, idle, "twolog", idleSt)
	for _, dir := range []string{killed, idle} {
		require.GreaterOrEqual(t, len(nonEmpty(t, matchFiles(t, dir, "*.log"))), 2, "the killed base has two logs: %s", listFiles(t, dir))
	}

	clean := filepath.Join(memTempDir(t), "clean")
	copyDir(t, killed, clean)
	b, err = embedded.Open(clean, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	require.NoError(t, b.Close())
	bases := []struct {
		name, dir string
		st        *crashState
	}{{"clean", clean, st}, {"killed", killed, st}, {"killed-idle", idle, idleSt}}
	for _, base := range bases {
		t.Logf("%s base: %s", base.name, listFiles(t, base.dir))
	}

	newest := func(pattern string, back int) func(dir string) []string {
		return func(dir string) []string {
			names := matchFiles(t, dir, pattern)
			slices.Sort(names) // Pebble numbers files in creation order
			if len(names) <= back {
				return nil
			}
			return []string{names[len(names)-1-back]}
		}
	}
	all := func(pattern string) func(dir string) []string {
		return func(dir string) []string { return matchFiles(t, dir, pattern) }
	}
	kinds := []damageKind{
		{"wal", newest("*.log", 0)},
		{"older-wal", newest("*.log", 1)},
		{"sstable", newest("*.sst", 0)},
		{"oldest-sstable", func(dir string) []string {
			names := matchFiles(t, dir, "*.sst")
			slices.Sort(names)
			if len(names) < 2 {
				return nil
			}
			return names[:1]
		}},
		{"MANIFEST", newest("MANIFEST-*", 0)},
		{"OPTIONS", newest("OPTIONS-*", 0)},
		{"CURRENT", all("CURRENT")},
		{"marker.manifest", all("marker.manifest.*")},
		{"marker.format-version", all("marker.format-version.*")},
		{"identity", all("duality.identity")},
		{"acked-newest", newestAcked(t)},
		{"acked-both", all("duality.acked.*")},
	}
	flips := []float64{0, 0.5, 1}
	sizes := []int{16}
	if *damageWide {
		flips = []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
		sizes = []int{1, 16, 64}
	}
	var ops []damageOp
	for _, n := range sizes {
		for _, at := range flips {
			name := map[float64]string{0: "flip-start", 0.5: "flip-middle", 1: "flip-end"}[at]
			if name == "" {
				name = fmt.Sprintf("flip-%d%%", int(at*100))
			}
			if len(sizes) > 1 {
				name += fmt.Sprintf("-%dB", n)
			}
			ops = append(ops, damageOp{name, flipAt(at, n)})
		}
	}
	ops = append(ops,
		damageOp{"truncate-half", truncateTo(2)},
		damageOp{"truncate-zero", truncateTo(0)},
		damageOp{"delete", func(name string) (string, error) { return "deleted", os.Remove(name) }},
	)

	type dcase struct {
		base, kind, op, what string
		applicable           bool
		st                   *crashState
	}
	var cases []dcase
	for _, base := range bases {
		for _, k := range kinds {
			files := k.files(base.dir)
			for _, op := range ops {
				cases = append(cases, dcase{base: base.name, kind: k.name, op: op.name, applicable: len(files) > 0, st: base.st})
			}
		}
	}
	// The applicable cases in chunks: each a directory root/<j> per case
	// (a copy of its base, damaged) verified by runJobs, which removes it.
	results := map[int]*jobResult{}
	baseDir := map[string]string{}
	for _, base := range bases {
		baseDir[base.name] = base.dir
	}
	kindOf := map[string]damageKind{}
	for _, k := range kinds {
		kindOf[k.name] = k
	}
	opOf := map[string]damageOp{}
	for _, op := range ops {
		opOf[op.name] = op
	}
	start := time.Now()
	verified := 0
	for first := 0; first < len(cases); {
		root := memTempDir(t)
		var chunk []int
		for ; first < len(cases) && len(chunk) < 100; first++ {
			c := &cases[first]
			if !c.applicable {
				continue
			}
			dir := filepath.Join(root, strconv.Itoa(len(chunk)))
			copyDir(t, baseDir[c.base], dir)
			var did []string
			for _, f := range kindOf[c.kind].files(baseDir[c.base]) {
				what, err := opOf[c.op].fn(filepath.Join(dir, filepath.Base(f)))
				require.NoError(t, err)
				did = append(did, filepath.Base(f)+": "+what)
			}
			c.what = strings.Join(did, "; ")
			chunk = append(chunk, first)
		}
		for j, r := range runJobs(t, "verify", root) {
			results[chunk[j]] = r
		}
		verified += len(chunk)
		require.NoError(t, os.RemoveAll(root))
	}
	t.Logf("%d cases verified in child processes in %v", verified, time.Since(start).Round(time.Millisecond))

	outcome := map[[3]string]string{}
	for i, c := range cases {
		key := [3]string{c.base, c.kind, c.op}
		if !c.applicable {
			outcome[key] = "n/a"
			continue
		}
		t.Run(c.base+"/"+c.kind+"/"+c.op, func(t *testing.T) {
			res := parseVerify(t, results[i])
			outcome[key] = checkDamage(t, res, c.st, c.what)
		})
	}

	// The table: one row per kind and damage, one column per base.
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| file | damage | clean | killed | killed-idle |\n|---|---|---|---|---|\n")
	for _, k := range kinds {
		for _, op := range ops {
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s |\n", k.name, op.name,
				outcome[[3]string{"clean", k.name, op.name}], outcome[[3]string{"killed", k.name, op.name}],
				outcome[[3]string{"killed-idle", k.name, op.name}])
		}
	}
	t.Log(sb.String())
	if out := os.Getenv("DUALITY_DAMAGE_TABLE"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(sb.String()), 0o644))
	}
}

// checkDamage applies the invariant to a verify result and returns the
// outcome for the table: "ErrCorrupt (open)", "ErrCorrupt (read)" or
// "intact".
func checkDamage(t *testing.T, res verifyResult, st *crashState, what string) string {
	t.Helper()
	if e := cmpOr(res.openErr, res.readErr); e != nil {
		stage := map[bool]string{true: "open", false: "read"}[res.openErr != nil]
		t.Logf("%s: error on %s: %s", what, stage, e.Msg)
		require.True(t, e.Corrupt, "%s: the error on %s does not match broker.ErrCorrupt: %s", what, stage, e.Msg)
		return "ErrCorrupt (" + stage + ")"
	}
	found := map[string]ackedBatch{}
	for tp, recs := range res.recs {
		require.Equal(t, crashTopic, tp.Topic, "%s: unexpected topic", what)
		checkBatches(t, recs, tp.Topic, tp.Partition, found)
	}
	var lost []string
	for id, a := range st.batches {
		got, ok := found[id]
		if !ok {
			lost = append(lost, id)
			continue
		}
		require.Equal(t, a, got, "%s: acknowledged batch %s moved", what, id)
	}
	slices.Sort(lost)
	require.Empty(t, lost, "%s: reopened without any error but %d of %d acknowledged batches are gone", what, len(lost), len(st.batches))
	t.Logf("%s: opened without error, all %d acknowledged batches intact", what, len(st.batches))
	return "intact"
}

// newestAcked returns the acknowledgement file holding the newest record:
// the one written last.
func newestAcked(t *testing.T) func(dir string) []string {
	return func(dir string) []string {
		var best string
		var bestTime time.Time
		for _, n := range matchFiles(t, dir, "duality.acked.*") {
			fi, err := os.Stat(n)
			require.NoError(t, err)
			if best == "" || fi.ModTime().After(bestTime) {
				best, bestTime = n, fi.ModTime()
			}
		}
		if best == "" {
			return nil
		}
		return []string{best}
	}
}

func nonEmpty(t *testing.T, names []string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		fi, err := os.Stat(n)
		require.NoError(t, err)
		if fi.Size() > 0 {
			out = append(out, n)
		}
	}
	return out
}

// flipAt returns a damage that inverts n bytes at the fraction at of a
// file's size (the last n bytes for 1).
func flipAt(at float64, n int) func(name string) (string, error) {
	return func(name string) (string, error) {
		data, err := os.ReadFile(name)
		if err != nil {
			return "", err
		}
		if len(data) == 0 {
			return "empty file, nothing to flip", nil
		}
		off := max(0, min(int(float64(len(data))*at), len(data)-n))
		end := min(off+n, len(data))
		for i := off; i < end; i++ {
			data[i] ^= 0xff
		}
		return fmt.Sprintf("flipped %d bytes at %d of %d", end-off, off, len(data)), os.WriteFile(name, data, 0o644)
	}
}

// truncateTo returns a damage that cuts a file to 1/div of its size (to
// zero for div 0).
func truncateTo(div int64) func(name string) (string, error) {
	return func(name string) (string, error) {
		fi, err := os.Stat(name)
		if err != nil {
			return "", err
		}
		size := int64(0)
		if div > 0 {
			size = fi.Size() / div
		}
		return fmt.Sprintf("truncated from %d to %d bytes", fi.Size(), size), os.Truncate(name, size)
	}
}

// runTwoLogChild runs a twoLogChild of mode ("twolog" or "twolog-strict")
// on dir, records its acknowledgements into st and kills it once it
// reports two logs.
func runTwoLogChild(t *testing.T, dir, mode string, st *crashState) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s false 0 %s", crashEnv, mode, dir))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	ready := false
	for !ready && sc.Scan() {
		if sc.Text() == "two logs" {
			ready = true
			break
		}
		parseAck(t, sc.Text(), st)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.True(t, ready, "the twolog child ended early; stderr:\n%s", stderr.String())
}

// blockSSTFS blocks the creation of sstables forever once block is set, so
// that Pebble cannot flush.
type blockSSTFS struct {
	vfs.FS
	block *atomic.Bool
}

func (fs blockSSTFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if fs.block.Load() && strings.HasSuffix(name, ".sst") {
		select {} // until the parent kills the process
	}
	return fs.FS.Create(name, category)
}

// twoLogChild reopens dir, blocks flushes and produces batches to
// crashTopic (which must exist) until Pebble has rotated its write-ahead
// log at least once and the newest log holds two blocks, printing an
// "ack" line per batch and then "two logs". Then it waits to be killed.
// With strict it opens the broker WithAckRecordSync(true) and says "two
// logs" at once; without, a second after the last acknowledgement: the
// idle time before the crash in which the background record catches up.
func twoLogChild(dir string, strict bool) error {
	before, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return err
	}
	var block atomic.Bool
	b, err := embedded.Open(dir, embedded.WithFS(blockSSTFS{vfs.Default, &block}), embedded.WithCleanupInterval(-1),
		embedded.WithAckRecordSync(strict),
		// Small memtables rotate the log after 64 KiB, which keeps the
		// test's data, and its verification, small.
		embedded.WithPebbleOptions(func(o *pebble.Options) { o.MemTableSize = 64 << 10 }))
	if err != nil {
		return err
	}
	block.Store(true)
	ctx := context.Background()
	for i := 0; ; i++ {
		id := fmt.Sprintf("k%d", i)
		recs := batchRecords(crashTopic, int32(i%3), id, 1+i%8)
		if err := b.Produce(ctx, recs); err != nil {
			return fmt.Errorf("produce %s: %w", id, err)
		}
		fmt.Printf("ack %s %d %d %d %s\n", crashTopic, recs[0].Partition, recs[0].Offset, len(recs), id)
		if i%16 != 0 {
			continue
		}
		logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
		if err != nil {
			return err
		}
		var sizes []int64 // of the logs this run wrote
		for _, l := range logs {
			if fi, err := os.Stat(l); err == nil && fi.Size() > 0 && !slices.Contains(before, l) {
				sizes = append(sizes, fi.Size())
			}
		}
		if len(sizes) >= 2 && sizes[len(sizes)-1] >= 40<<10 {
			if !strict {
				time.Sleep(time.Second)
			}
			fmt.Println("two logs")
			select {}
		}
		if i > 100000 {
			return errors.New("no log rotation after 100000 batches")
		}
	}
}

// TestLostWritesError checks what Open says about acknowledged writes lost
// from a write-ahead log: a copy of a directory taken while its broker is
// open (everything acknowledged is in the log only, as after a crash) has
// its log truncated, and Open names the partitions and offset ranges.
func TestLostWritesError(t *testing.T) {
	dir := filepath.Join(memTempDir(t), "live")
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1), embedded.WithAckRecordSync(true))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(t.Context(), crashTopic, broker.TopicConfig{Partitions: 3, RetentionTime: -1}))
	var next [3]int64
	for i := range 300 {
		recs := batchRecords(crashTopic, int32(i%3), fmt.Sprintf("l%d", i), 4)
		require.NoError(t, b.Produce(t.Context(), recs))
		next[i%3] = recs[len(recs)-1].Offset + 1
	}
	crashed := filepath.Join(memTempDir(t), "crashed")
	copyDir(t, dir, crashed)
	require.NoError(t, b.Close())

	logs := nonEmpty(t, matchFiles(t, crashed, "*.log"))
	require.Len(t, logs, 1, "one log holds the writes: %s", listFiles(t, crashed))
	fi, err := os.Stat(logs[0])
	require.NoError(t, err)
	require.NoError(t, os.Truncate(logs[0], fi.Size()/2))

	_, err = embedded.Open(crashed, embedded.WithCleanupInterval(-1))
	require.ErrorIs(t, err, broker.ErrCorrupt)
	var lost *embedded.LostWritesError
	require.ErrorAs(t, err, &lost)
	t.Log(err)
	require.Equal(t, []string{filepath.Base(logs[0])}, lost.Logs)
	require.Len(t, lost.Partitions, 3, "every partition lost its newest batches")
	for i, r := range lost.Partitions {
		require.Equal(t, embedded.LostRange{Topic: crashTopic, Partition: int32(i), From: r.From, To: next[i]}, r)
		require.Less(t, r.From, r.To)
	}
	require.Contains(t, err.Error(), fmt.Sprintf("%s/0 [%d, %d)", crashTopic, lost.Partitions[0].From, next[0]))
}
