package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// startCPUProfile, for developers measuring skiff's start or its idle:
// with SKIFF_CPU_PROFILE=FILE in the environment, the process writes a CPU
// profile of SKIFF_CPU_PROFILE_SECONDS (default 5) seconds to FILE (go tool
// pprof FILE), from its start or, with SKIFF_CPU_PROFILE_AFTER=N, from N
// seconds after it. A "%p" in FILE is replaced by the process ID, for
// several processes started with the same environment (bench/fleet's
// servers).
func startCPUProfile() {
	path := os.Getenv("SKIFF_CPU_PROFILE")
	if path == "" {
		return
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	d, after := seconds("SKIFF_CPU_PROFILE_SECONDS", 5), seconds("SKIFF_CPU_PROFILE_AFTER", 0)
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "SKIFF_CPU_PROFILE: %v\n", err)
		os.Exit(2)
	}
	start := func() {
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "SKIFF_CPU_PROFILE: %v\n", err)
			os.Exit(2)
		}
		time.AfterFunc(d, func() {
			pprof.StopCPUProfile()
			f.Close()
		})
	}
	if after == 0 {
		start()
		return
	}
	time.AfterFunc(after, start)
}

// seconds is the environment variable name as a number of seconds, or def.
func seconds(name string, def float64) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return time.Duration(def * float64(time.Second))
	}
	v, err := time.ParseDuration(s + "s")
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", name, s, err)
		os.Exit(2)
	}
	return v
}
