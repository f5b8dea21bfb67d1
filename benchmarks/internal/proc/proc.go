// Package proc reads what the benchmarks report about their own process
// on Linux: CPU time, and memory fields of /proc/self/status (peak and
// current RSS), with a way to restart the peak.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUTime returns the user and system CPU time of the process so far, or
// 0 when getrusage fails.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MinorFaults returns the minor page faults of the process so far (a
// first touch of a page the kernel must supply), or 0 when getrusage
// fails. On a VM whose host reclaims the guest's free pages, each costs
// tens of microseconds, so a run that churns through fresh memory pays
// for it in CPU time.
func MinorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

// Status returns a field of /proc/self/status given in kB (e.g. "VmHWM",
// the peak RSS, or "VmRSS"), in bytes.
func Status(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/status %s: %w", field, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}

// ResetPeak restarts the peak RSS (VmHWM) from the current RSS (writing 5
// to /proc/self/clear_refs), so that the next Status("VmHWM") is the peak
// of what follows. It does nothing where the kernel does not allow it.
func ResetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
