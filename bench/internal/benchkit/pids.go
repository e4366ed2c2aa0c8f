package benchkit

import (
	"os"
	"strconv"
	"strings"
)

// ProcessMemory is Memory of pid alone, without its descendants (the
// server's own figure when it has started containerd as a child).
func ProcessMemory(pid int) (Memory, error) { return memory(pid) }

// FindProcesses lists the processes whose command line (argv, split on
// NUL) satisfies match, e.g. the containerd started with a given --config.
func FindProcesses(match func(argv []string) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// Descendants lists every process below pid, by parent ids in /proc.
func Descendants(pid int) []int { return descendants(pid) }
