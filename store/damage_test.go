package store_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

var damageWide = flag.Bool("damage.wide", false, "TestDamageMatrix: flip at every tenth of each file and in 1- and 64-byte runs, not only at its start, middle and end")

// TestDamageMatrix damages every kind of file of a Pebble store directory
// in every way (flip bytes at the start, middle and end, truncate to half
// and to zero, delete) on two bases and reopens each damaged copy. Every
// case must give an error matching store.ErrCorrupt (from OpenPebble or a
// read) or a consistent state: exactly the batches up to the stored offset
// (the changelog restores the rest), and on the cleanly closed base all of
// them.
//
// The bases: "clean" is batches applied in two parts, each flushed (so
// there are two sstables), then closed. "killed" is the clean base with
// more batches applied by a child process killed with SIGKILL while Pebble
// could not flush (sstable creation blocked): they live in two write-ahead
// logs, an older, rotated one and the newest.
func TestDamageMatrix(t *testing.T) {
	if dir := os.Getenv("STORE_DAMAGE_CHILD"); dir != "" {
		twoLogChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	clean := filepath.Join(t.TempDir(), "clean")
	db, err := store.OpenPebble(clean)
	require.NoError(t, err)
	s, err := db.Store("s", 0)
	require.NoError(t, err)
	var b store.Batch
	const cleanBatches = 400
	for i := range int64(cleanBatches) {
		damageBatch(&b, i)
		require.NoError(t, s.Apply(&b))
		if i == cleanBatches/2 {
			require.NoError(t, db.Flush())
		}
	}
	require.NoError(t, db.Close())

	killed := filepath.Join(t.TempDir(), "killed")
	copyTree(t, clean, killed)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDamageMatrix$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_DAMAGE_CHILD="+killed)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	killedLast := int64(-1)
	for sc.Scan() && sc.Text() != "two logs" {
		killedLast, err = strconv.ParseInt(sc.Text(), 10, 64)
		require.NoError(t, err, "child printed %q", sc.Text())
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Greater(t, killedLast, int64(cleanBatches), "the child applied nothing; stderr:\n%s", stderr.String())
	bases := []struct {
		name string
		dir  string
		last int64
	}{{"clean", clean, cleanBatches - 1}, {"killed", killed, killedLast}}
	for _, base := range bases {
		t.Logf("%s base (last batch %d): %s", base.name, base.last, listDir(t, base.dir))
	}

	newest := func(pattern string, back int) func(dir string) []string {
		return func(dir string) []string {
			names, _ := filepath.Glob(filepath.Join(dir, pattern))
			slices.Sort(names)
			if len(names) <= back {
				return nil
			}
			return []string{names[len(names)-1-back]}
		}
	}
	all := func(pattern string) func(dir string) []string {
		return func(dir string) []string {
			names, _ := filepath.Glob(filepath.Join(dir, pattern))
			return names
		}
	}
	kinds := []struct {
		name  string
		files func(dir string) []string
	}{
		{"wal", newest("*.log", 0)},
		{"older-wal", newest("*.log", 1)},
		{"sstable", newest("*.sst", 0)},
		{"oldest-sstable", func(dir string) []string {
			names, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
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
	}
	flips := []float64{0, 0.5, 1}
	sizes := []int{16}
	if *damageWide {
		flips = []float64{0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
		sizes = []int{1, 16, 64}
	}
	type op struct {
		name string
		fn   func(name string) (string, error)
	}
	var ops []op
	for _, n := range sizes {
		for _, at := range flips {
			name := map[float64]string{0: "flip-start", 0.5: "flip-middle", 1: "flip-end"}[at]
			if name == "" {
				name = fmt.Sprintf("flip-%d%%", int(at*100))
			}
			if len(sizes) > 1 {
				name += fmt.Sprintf("-%dB", n)
			}
			ops = append(ops, op{name, flipBytes(at, n)})
		}
	}
	ops = append(ops,
		op{"truncate-half", truncateFile(2)},
		op{"truncate-zero", truncateFile(0)},
		op{"delete", func(name string) (string, error) { return "deleted", os.Remove(name) }},
	)

	outcome := map[[3]string]string{}
	root := t.TempDir()
	n := 0
	for _, base := range bases {
		for _, k := range kinds {
			files := k.files(base.dir)
			for _, o := range ops {
				key := [3]string{base.name, k.name, o.name}
				if len(files) == 0 {
					outcome[key] = "n/a"
					continue
				}
				t.Run(base.name+"/"+k.name+"/"+o.name, func(t *testing.T) {
					dir := filepath.Join(root, strconv.Itoa(n))
					n++
					copyTree(t, base.dir, dir)
					// Opening it makes Pebble preallocate a write-ahead
					// log of the memtable's size: free it at once.
					defer func() { require.NoError(t, os.RemoveAll(dir)) }()
					var did []string
					for _, f := range files {
						what, err := o.fn(filepath.Join(dir, filepath.Base(f)))
						require.NoError(t, err)
						did = append(did, filepath.Base(f)+": "+what)
					}
					outcome[key] = checkStoreDamage(t, dir, strings.Join(did, "; "), base.last, base.name == "clean")
				})
			}
		}
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| file | damage | clean | killed |\n|---|---|---|---|\n")
	for _, k := range kinds {
		for _, o := range ops {
			fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", k.name, o.name,
				outcome[[3]string{"clean", k.name, o.name}], outcome[[3]string{"killed", k.name, o.name}])
		}
	}
	t.Log(sb.String())
	if out := os.Getenv("DUALITY_DAMAGE_TABLE"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(sb.String()), 0o644))
	}
}

// checkStoreDamage opens the damaged directory and returns the outcome for
// the table: "ErrCorrupt (open)", "ErrCorrupt (read)", "intact" (every
// batch) or "prefix to N" (consistent, at offset N < last).
func checkStoreDamage(t *testing.T, dir, what string, last int64, complete bool) string {
	t.Helper()
	corrupt := func(stage string, err error) string {
		t.Logf("%s: error on %s: %v", what, stage, err)
		require.ErrorIs(t, err, store.ErrCorrupt, "%s: the error on %s does not match store.ErrCorrupt", what, stage)
		return "ErrCorrupt (" + stage + ")"
	}
	db, err := store.OpenPebble(dir)
	if err != nil {
		return corrupt("open", err)
	}
	defer func() { _ = db.Close() }()
	s, err := db.Store("s", 0)
	if err != nil {
		return corrupt("open", err)
	}
	off, ok, err := s.Offset()
	if err != nil {
		return corrupt("read", err)
	}
	got := map[string]string{}
	c := s.Range(nil, nil)
	for k, v := range c.All() {
		got[string(k)] = string(v)
	}
	if err := errors.Join(c.Err(), c.Close()); err != nil {
		return corrupt("read", err)
	}
	want := store.NewMemory("want", 0)
	defer want.Close()
	if ok {
		var b store.Batch
		for i := int64(0); i <= off; i++ {
			damageBatch(&b, i)
			require.NoError(t, want.Apply(&b))
		}
	}
	require.Equal(t, scanAll(t, want), got, "%s: reopened without error but the state is not the state at offset %d (%v)", what, off, ok)
	if !ok {
		off = -1
	}
	if complete {
		require.Equal(t, last, off, "%s: reopened without error but batches %d-%d of a cleanly closed store are gone", what, off+1, last)
	}
	if off == last {
		t.Logf("%s: opened without error, all %d batches intact", what, last+1)
		return "intact"
	}
	t.Logf("%s: opened without error, consistent at offset %d of %d", what, off, last)
	return fmt.Sprintf("prefix to %d of %d", off, last)
}

// damageBatch is crashBatch plus a key of its own, so that a batch missing
// from the state shows even when later ones overwrite all its other keys.
func damageBatch(b *store.Batch, i int64) {
	crashBatch(b, i, false)
	b.Put(fmt.Appendf(nil, "z%06d", i), []byte("x"))
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

// twoLogChild reopens dir, blocks flushes and applies the batches after
// the stored offset, printing each number once applied, until Pebble has
// rotated its write-ahead log and the newest holds several blocks; then it
// prints "two logs" and waits to be killed.
func twoLogChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var block atomic.Bool
	db, err := store.OpenPebble(dir, store.WithFS(blockSSTFS{vfs.Default, &block}))
	if err != nil {
		fail(err)
	}
	block.Store(true)
	s, err := db.Store("s", 0)
	if err != nil {
		fail(err)
	}
	off, _, err := s.Offset()
	if err != nil {
		fail(err)
	}
	var b store.Batch
	for i := off + 1; ; i++ {
		damageBatch(&b, i)
		if err := s.Apply(&b); err != nil {
			fail(err)
		}
		fmt.Println(i)
		if i%16 != 0 {
			continue
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		var sizes []int64
		for _, l := range logs {
			if fi, err := os.Stat(l); err == nil && fi.Size() > 0 {
				sizes = append(sizes, fi.Size())
			}
		}
		if len(sizes) >= 2 && sizes[len(sizes)-1] >= 4*32<<10 {
			fmt.Println("two logs")
			select {}
		}
		if i > off+200000 {
			fail(errors.New("no log rotation after 200000 batches"))
		}
	}
}

func flipBytes(at float64, n int) func(name string) (string, error) {
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

func truncateFile(div int64) func(name string) (string, error) {
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

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o755))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var parts []string
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		parts = append(parts, fmt.Sprintf("%s(%d)", e.Name(), fi.Size()))
	}
	return strings.Join(parts, " ")
}
