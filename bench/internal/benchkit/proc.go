package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is resident memory split as /proc/PID/status splits it.
type Memory struct {
	RSS  int64 // VmRSS
	Anon int64 // RssAnon: heap, stacks, anonymous mappings
	File int64 // RssFile: mapped files, chiefly the executable's own pages
}

func (m Memory) String() string {
	return fmt.Sprintf("%s (anon %s, file-backed %s)", MiB(m.RSS), MiB(m.Anon), MiB(m.File))
}

// TreeMemory is Memory of pid plus that of every descendant.
func TreeMemory(pid int) (Memory, error) {
	var total Memory
	for i, p := range append([]int{pid}, descendants(pid)...) {
		m, err := memory(p)
		if err != nil {
			if i == 0 {
				return Memory{}, err
			}
			continue // a child may have just exited
		}
		total.RSS += m.RSS
		total.Anon += m.Anon
		total.File += m.File
	}
	return total, nil
}

// TreeRSS is VmRSS of pid plus that of every descendant, in bytes, read
// from /proc. Shared pages are counted once per process, as VmRSS does.
func TreeRSS(pid int) (int64, error) {
	total, err := vmRSS(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range descendants(pid) {
		if rss, err := vmRSS(c); err == nil { // a child may have just exited
			total += rss
		}
	}
	return total, nil
}

func vmRSS(pid int) (int64, error) {
	m, err := memory(pid)
	return m.RSS, err
}

func memory(pid int) (Memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	fields := map[string]*int64{"VmRSS:": &m.RSS, "RssAnon:": &m.Anon, "RssFile:": &m.File}
	seen := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		key, rest, _ := strings.Cut(line, "\t")
		dst, ok := fields[key]
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("pid %d: parse %q: %w", pid, line, err)
		}
		*dst = kb << 10
		seen = seen || key == "VmRSS:"
	}
	if !seen {
		return Memory{}, fmt.Errorf("pid %d: no VmRSS in /proc/%d/status", pid, pid)
	}
	return m, sc.Err()
}

// descendants lists the processes below pid by their parent ids in
// /proc/*/stat.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name in parentheses may hold spaces; fields follow the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < 10000 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// CPUSeconds is the CPU time (user and system) pid has used, from
// /proc/PID/stat, in seconds.
func CPUSeconds(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after its closing parenthesis (utime and stime are fields 14 and 15).
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q %q", pid, fields[11], fields[12])
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (utime + stime) / clockTicks, nil
}
